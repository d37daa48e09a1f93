package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// Session tokens (AWS IMDSv2) are stateless: "v1." and the base64url of
// the expiry (Unix seconds, 8 bytes) and an HMAC-SHA256 over the instance
// id and that expiry, keyed by metadata_token_key. Any API sharing the
// store checks any other's tokens, across restarts; a token names no
// instance, and one minted for another instance fails its HMAC.
const tokenPrefix = "v1."

// The answers' texts, as AWS's IMDS words them.
const (
	tokenBadTTL       = "Missing or invalid X-aws-ec2-metadata-token-ttl-seconds header: give 1 to 21600 seconds."
	tokenUnauthorized = "Unauthorized: the X-aws-ec2-metadata-token is missing, invalid or expired."
	tokenMethod       = "Only PUT is allowed on /latest/api/token."
)

func tokenMAC(key, instanceID string, expiry int64) []byte {
	m := hmac.New(sha256.New, []byte(key))
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(expiry))
	m.Write(e[:])
	m.Write([]byte(instanceID))
	return m.Sum(nil)
}

// mintToken is instanceID's token valid until expiry.
func mintToken(key, instanceID string, expiry time.Time) string {
	e := expiry.Unix()
	b := make([]byte, 8, 8+sha256.Size)
	binary.BigEndian.PutUint64(b, uint64(e))
	b = append(b, tokenMAC(key, instanceID, e)...)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// tokenValid says whether tok is instanceID's and unexpired at now.
func tokenValid(key, instanceID, tok string, now time.Time) bool {
	raw, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	e := int64(binary.BigEndian.Uint64(b[:8]))
	return hmac.Equal(b[8:], tokenMAC(key, instanceID, e)) && now.Unix() < e
}

// sessionToken handles tokens for an identified instance: it answers the
// token PUT, and refuses a metadata request whose token is invalid or
// expired, or that has none while metadata_tokens is required (401 on
// both trees, as AWS's required mode does). It reports whether it
// answered.
func (s *Server) sessionToken(w http.ResponseWriter, r *http.Request, path string, cfg store.Config, e *entry, now time.Time) bool {
	if metadata.IsTokenPath(path) {
		s.mint(w, r, cfg, e, now)
		return true
	}
	tok, has := header(r, metadata.TokenHeader)
	switch {
	case has && cfg.MetadataTokenKey != "" && tokenValid(cfg.MetadataTokenKey, e.instanceID, tok, now):
		return false
	case has, cfg.TokensRequired(store.Instance{MetadataTokens: e.tokens}):
		w.Header().Set("WWW-Authenticate", "X-aws-ec2-metadata-token")
		writeError(w, r, errorPage{http.StatusUnauthorized, tokenUnauthorized})
		return true
	}
	return false
}

// mint answers PUT /latest/api/token: 400 without a TTL of 1 to 21600
// seconds, else the token with the TTL granted in the same header.
func (s *Server) mint(w http.ResponseWriter, r *http.Request, cfg store.Config, e *entry, now time.Time) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		writeError(w, r, errorPage{http.StatusMethodNotAllowed, tokenMethod})
		return
	}
	v, _ := header(r, metadata.TokenTTLHeader)
	ttl, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || ttl < 1 || ttl > metadata.TokenMaxTTL {
		writeError(w, r, errorPage{http.StatusBadRequest, tokenBadTTL})
		return
	}
	if cfg.MetadataTokenKey == "" {
		// serve makes the key at start; an API without one cannot mint.
		writeError(w, r, errorPage{http.StatusServiceUnavailable, "Session tokens are unavailable: metadata_token_key is not set."})
		return
	}
	tok := mintToken(cfg.MetadataTokenKey, e.instanceID, now.Add(time.Duration(ttl)*time.Second))
	h := w.Header()
	h.Set(metadata.TokenTTLHeader, strconv.Itoa(ttl))
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(tok)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(tok))
}
