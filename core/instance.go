package core

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// InstanceID names one protocol instance inside a hierarchy, as a path of
// segments separated by '/'. A segment is a lower-case name optionally
// followed by ':' and a decimal index: "abc/e:7/acs/rbc:3" is the reliable
// broadcast of replica 3 inside the agreement on a common subset of epoch 7
// of atomic broadcast. Every message carries the full ID, and signed or
// hashed bytes include it (length-prefixed), so a message for one instance
// can never be replayed into another (ATTACKS.md row 11).
//
// The string form is canonical: ParseInstanceID accepts exactly what the
// constructors produce, so two replicas never disagree on whether two IDs
// are equal.
type InstanceID string

// Limits on instance identifiers received from the network.
const (
	MaxInstanceLen   = 256
	MaxInstanceDepth = 16
)

// ErrInstanceID is wrapped by every instance-ID parse error.
var ErrInstanceID = errors.New("core: malformed instance id")

// Root returns a top-level instance ID with the given segment name.
// It panics if name is not a valid segment name: names are program
// constants, never input.
func Root(name string) InstanceID {
	mustName(name)
	return InstanceID(name)
}

// RootN returns a top-level instance "name:i".
func RootN(name string, i uint64) InstanceID {
	mustName(name)
	return InstanceID(name + ":" + strconv.FormatUint(i, 10))
}

// Child returns the instance "id/name".
func (id InstanceID) Child(name string) InstanceID {
	mustName(name)
	if id == "" {
		return InstanceID(name)
	}
	return InstanceID(string(id) + "/" + name)
}

// ChildN returns the instance "id/name:i".
func (id InstanceID) ChildN(name string, i uint64) InstanceID {
	return id.Child(name + ":" + strconv.FormatUint(i, 10))
}

// Parent returns the enclosing instance, or "" for a root.
func (id InstanceID) Parent() InstanceID {
	if i := strings.LastIndexByte(string(id), '/'); i >= 0 {
		return id[:i]
	}
	return ""
}

// Depth is the number of segments.
func (id InstanceID) Depth() int {
	if id == "" {
		return 0
	}
	return strings.Count(string(id), "/") + 1
}

// Prefix returns the first d segments of id (id itself if it is shorter).
func (id InstanceID) Prefix(d int) InstanceID {
	s := string(id)
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			d--
			if d == 0 {
				return InstanceID(s[:i])
			}
		}
	}
	return id
}

// Within reports whether id equals ancestor or lies below it.
func (id InstanceID) Within(ancestor InstanceID) bool {
	if ancestor == "" {
		return true
	}
	s, a := string(id), string(ancestor)
	return s == a || (strings.HasPrefix(s, a) && s[len(a)] == '/')
}

// Last returns the final segment's name and index (ok=false if it has none).
func (id InstanceID) Last() (name string, index uint64, ok bool) {
	seg := string(id)
	if i := strings.LastIndexByte(seg, '/'); i >= 0 {
		seg = seg[i+1:]
	}
	name, idx, found := strings.Cut(seg, ":")
	if !found {
		return name, 0, false
	}
	v, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return name, 0, false
	}
	return name, v, true
}

// ParseInstanceID validates an instance ID received from outside the
// process. It never panics.
func ParseInstanceID(s string) (InstanceID, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInstanceID)
	}
	if len(s) > MaxInstanceLen {
		return "", fmt.Errorf("%w: %d bytes > %d", ErrInstanceID, len(s), MaxInstanceLen)
	}
	segs := strings.Split(s, "/")
	if len(segs) > MaxInstanceDepth {
		return "", fmt.Errorf("%w: depth %d > %d", ErrInstanceID, len(segs), MaxInstanceDepth)
	}
	for _, seg := range segs {
		name, idx, hasIdx := strings.Cut(seg, ":")
		if !validName(name) {
			return "", fmt.Errorf("%w: bad segment name %q", ErrInstanceID, name)
		}
		if hasIdx && !canonicalUint(idx) {
			return "", fmt.Errorf("%w: bad segment index %q", ErrInstanceID, idx)
		}
	}
	return InstanceID(s), nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// canonicalUint accepts decimal uint64 without sign or leading zeros.
func canonicalUint(s string) bool {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func mustName(name string) {
	n, idx, hasIdx := strings.Cut(name, ":")
	if !validName(n) || (hasIdx && !canonicalUint(idx)) {
		panic(fmt.Sprintf("core: invalid instance segment %q", name))
	}
}
