module github.com/maftia/maftia

go 1.26

require (
	google.golang.org/protobuf v1.36.12
	pgregory.net/rapid v1.3.0
)

tool google.golang.org/protobuf/cmd/protoc-gen-go
