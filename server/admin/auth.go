package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// The admin endpoint streams instance ids and guest addresses. Its unix
// socket is guarded by file permissions (0660); its TCP listener
// (--admin-listen) by a bearer token every request must carry:
//
//	Authorization: Bearer <token>
//
// The token is the content of a file: --admin-token-file, or else
// <data-dir>/admin.token, made (0600, 256 random bits) on first need. A
// non-loopback --admin-listen needs --admin-token-file: a token that
// leaves the host should be one the operator chose to hand out.

// TokenFileName is the token's file in the data dir.
const TokenFileName = "admin.token"

// TokenEnv names the environment variable a client takes the token from
// for an http:// address (for example MDCTL_ADMIN_TOKEN=$(cat
// /var/lib/mdctl/admin.token) mdctl tui --server http://node:9100).
const TokenEnv = "MDCTL_ADMIN_TOKEN"

// LoadToken reads the token in path; with create, a missing file is made
// with a fresh token.
func LoadToken(path string, create bool) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		return newTokenFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("admin token %s: %d characters; use at least 16 (e.g. openssl rand -hex 32 > %s)", path, len(tok), path)
	}
	return tok, nil
}

func newTokenFile(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadToken(path, false) // another serve made it first
	}
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	_, err = f.WriteString(tok + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("admin token: write %s: %w", path, err)
	}
	return tok, nil
}

// IsLoopback says whether a listen address (host:port) stays on this
// host: a loopback IP or "localhost". An empty host or 0.0.0.0 is every
// interface, so not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireToken refuses requests without the bearer token with 401.
func requireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mdctl admin"`)
			http.Error(w, "401 unauthorized: the admin endpoint over TCP needs Authorization: Bearer <token> (the serve's admin token file; clients read $"+TokenEnv+")", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
