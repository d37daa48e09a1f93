package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
	"sync/atomic"
)

// signer computes nova's proxy signature, lowercase hex
// HMAC-SHA256(secret, id), with pooled hashes: the check runs on every
// signed request, and building an HMAC costs two SHA-256 key blocks plus
// allocations. One signer serves one secret; the server swaps signers
// when the secret changes.
type signer struct {
	secret string
	pool   sync.Pool
}

type signState struct {
	h   hash.Hash
	in  []byte
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
	got []byte
}

func newSigner(secret string) *signer {
	s := &signer{secret: secret}
	key := []byte(secret)
	s.pool.New = func() any {
		return &signState{h: hmac.New(sha256.New, key), in: make([]byte, 0, 64), got: make([]byte, 0, 64)}
	}
	return s
}

// expected returns the signature of id as a new string (for callers that
// keep it, such as the cache).
func (s *signer) expected(id string) string {
	st := s.pool.Get().(*signState)
	defer s.pool.Put(st)
	s.compute(st, id)
	return string(st.hex[:])
}

// verify reports in constant time whether sig is id's signature. An empty
// signature never verifies, as in nova.
func (s *signer) verify(id, sig string) bool {
	if sig == "" {
		return false
	}
	st := s.pool.Get().(*signState)
	defer s.pool.Put(st)
	s.compute(st, id)
	st.got = append(st.got[:0], sig...)
	return hmac.Equal(st.hex[:], st.got)
}

func (s *signer) compute(st *signState, id string) {
	st.h.Reset()
	st.in = append(st.in[:0], id...)
	st.h.Write(st.in)
	hex.Encode(st.hex[:], st.h.Sum(st.sum[:0]))
}

// signers holds the signer for the secret in force.
type signers struct{ cur atomic.Pointer[signer] }

func (ss *signers) get(secret string) *signer {
	if s := ss.cur.Load(); s != nil && s.secret == secret {
		return s
	}
	s := newSigner(secret)
	ss.cur.Store(s)
	return s
}
