// Package docker tests the container deployment in deploy/: it builds the
// FROM-scratch image maftia:dev (deploy/build-image), generates keys with
// maftia keygen, brings up deploy/compose-async.yml (4 replicas on a
// user-defined bridge network with fixed addresses), runs maftia kv put
// and get from the host through the ports published on 127.0.0.1, and
// tears everything down. It runs only with MAFTIA_DOCKER=1 and a working
// docker and docker-compose:
//
//	MAFTIA_DOCKER=1 go test -v ./test/docker
package docker
