package sig

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func FuzzUnmarshalPublicKey(f *testing.F) {
	a, _ := hex.DecodeString(order8)
	f.Add(a)
	f.Add(make([]byte, 32))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := UnmarshalPublicKey(b)
		if err != nil {
			return
		}
		if !bytes.Equal(pk.Marshal(), b) {
			t.Fatal("round trip changed bytes")
		}
		_ = pk.IsWeak()
	})
}

func FuzzUnmarshalPrivateKey(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sk, err := UnmarshalPrivateKey(b)
		if err != nil {
			return
		}
		msg := []byte("m")
		if Verify(sk.Public(), msg, sk.Sign(msg)) != nil {
			t.Fatal("own signature rejected")
		}
	})
}

// FuzzVerify: arbitrary key, message and signature bytes never panic, and
// single and batch verification always agree (the ZIP-215 guarantee).
func FuzzVerify(f *testing.F) {
	a, _ := hex.DecodeString(order8)
	f.Add(a, []byte("m"), make([]byte, 64))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 63))
	f.Fuzz(func(t *testing.T, key, msg, signature []byte) {
		pk, err := UnmarshalPublicKey(key)
		if err != nil {
			return
		}
		single := Verify(pk, msg, signature) == nil
		if expanded := pk.Expand().Verify(msg, signature) == nil; expanded != single {
			t.Fatalf("single %v expanded %v", single, expanded)
		}
		small := NewBatch(1) // verified one by one
		small.Add(pk, msg, signature)
		all, v := small.Verify(nil)
		if single != all || single != v[0] {
			t.Fatalf("single %v small batch %v/%v", single, all, v)
		}
		big := NewBatch(smallBatch + 1) // voi's batch equation
		big.AddKey(pk.Expand(), msg, signature)
		for range smallBatch {
			pk2, sk2 := mustKey(t)
			big.Add(pk2, msg, sk2.Sign(msg))
		}
		all, v = big.Verify(nil)
		if single != all || single != v[0] {
			t.Fatalf("single %v batch %v/%v", single, all, v)
		}
	})
}
