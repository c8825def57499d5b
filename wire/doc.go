// Package wire defines maftia's wire formats: protobuf messages (the .proto
// files here, generated Go code committed) and the checked decoders that
// turn bytes from the network into values. Decoding any byte string never
// panics: it either returns a well-formed value or an error wrapping
// ErrMalformed. Every decoder has a fuzz target (ATTACKS.md row 8).
package wire
