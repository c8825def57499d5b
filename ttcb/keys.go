package ttcb

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Key files: a module's Ed25519 key is one line of hex (the 32-byte seed);
// its control keys file has one line "peerID hexkey" per other module. Both
// must be mode 0600 (refused if readable by others), like every private
// key file of maftia.

func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s is accessible by others (mode %v), want 0600", ErrConfig, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return bytes.TrimSpace(b), nil
}

// LoadPrivateKey reads an Ed25519 key file (hex seed).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(string(b))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: %s: want %d hex-encoded bytes", ErrConfig, path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// WritePrivateKey writes an Ed25519 key file with mode 0600.
func WritePrivateKey(path string, k ed25519.PrivateKey) error {
	return os.WriteFile(path, []byte(hex.EncodeToString(k.Seed())+"\n"), 0o600)
}

// LoadControlKeys reads a control keys file.
func LoadControlKeys(path string) (map[uint32][]byte, error) {
	b, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	out := map[uint32][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		id, err1 := strconv.ParseUint(f[0], 10, 32)
		var k []byte
		var err2 error
		if len(f) == 2 {
			k, err2 = hex.DecodeString(f[1])
		}
		if len(f) != 2 || err1 != nil || err2 != nil || len(k) < 32 {
			return nil, fmt.Errorf("%w: %s line %d: want \"peerID hexkey\" with a key of ≥ 32 bytes", ErrConfig, path, line)
		}
		out[uint32(id)] = k
	}
	return out, nil
}

// WriteControlKeys writes a control keys file with mode 0600.
func WriteControlKeys(path string, keys map[uint32][]byte) error {
	var sb strings.Builder
	for id := uint32(1); id <= 64; id++ {
		if k, ok := keys[id]; ok {
			fmt.Fprintf(&sb, "%d %s\n", id, hex.EncodeToString(k))
		}
	}
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}
