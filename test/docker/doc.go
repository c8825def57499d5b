// Package docker tests the container deployment in deploy/: it builds the
// FROM-scratch image maftia:dev (deploy/build-image), generates keys with
// maftia keygen, brings up deploy/compose-async.yml (4 replicas on a
// user-defined bridge network with fixed addresses), runs maftia kv put
// and get from the host through the ports published on 127.0.0.1 — also
// with one container SIGKILLed and with one disconnected from the network
// — and tears everything down. A second test starts the TTCB modules of
// deploy/compose-hybrid.yml on their internal network. They run only with
// MAFTIA_DOCKER=1 and a working docker and docker-compose:
//
//	MAFTIA_DOCKER=1 go test -v ./test/docker
package docker
