// Command constsrv is the bare reference server of mdbench: the limit of a
// Go net/http server on this machine. Whatever the method and path, it
// answers 200 with one constant text/plain body of 36 bytes, the length of
// an instance UUID (what GET /latest/meta-data/instance-id returns from
// nova for an OpenStack instance). It listens on TCP or, behind a proxy
// hop, on a unix socket.
//
//	constsrv -listen 127.0.0.1:8080
//	constsrv -listen unix:/path/to/md.sock
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// body is 36 bytes, as an instance UUID.
const body = "00000000-0000-4000-8000-000000000036"

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "host:port, or unix:PATH")
	flag.Parse()
	ln, err := listener(*listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("constsrv: listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, handler()))
}

// handler writes the precomputed headers and body: no per-request
// formatting beyond what net/http itself does.
func handler() http.Handler {
	b := []byte(body)
	ctype, clen := []string{"text/plain; charset=utf-8"}, []string{strconv.Itoa(len(b))}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"], h["Content-Length"] = ctype, clen
		_, _ = w.Write(b)
	})
}

func listener(addr string) (net.Listener, error) {
	path, unix := strings.CutPrefix(addr, "unix:")
	if !unix {
		return net.Listen("tcp", addr)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// The proxy in front may run as another user (haproxy drops to its own).
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
