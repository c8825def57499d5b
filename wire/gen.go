package wire

// Regenerate with `go generate ./wire` (needs protoc from Debian's
// protobuf-compiler; protoc-gen-go is pinned by the tool line in go.mod).
//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=paths=source_relative:. *.proto"
