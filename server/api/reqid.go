package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync/atomic"
)

// requestIDs takes a caller's request id or makes one, oslo style
// ("req-" and a UUID-shaped string): a random per-server prefix and a
// counter, so making one costs no entropy.
type requestIDs struct {
	prefix string // "req-xxxxxxxx-xxxx-xxxx-xxxx-"
	seq    atomic.Uint64
}

func newRequestIDs() requestIDs {
	var b [10]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return requestIDs{prefix: "req-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-"}
}

// echo returns the request's id and sets it on the response: a sent
// X-Request-ID or X-Openstack-Request-Id comes back under its own name.
func (ids *requestIDs) echo(w http.ResponseWriter, r *http.Request) string {
	h := w.Header()
	for _, k := range [...]string{"X-Request-Id", "X-Openstack-Request-Id"} {
		if v := r.Header[k]; len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
			h[k] = v[:1]
			return v[0]
		}
	}
	var num [16]byte
	digits := strconv.AppendUint(num[:0], ids.seq.Add(1)&0xffffffffffff, 16)
	var buf [64]byte
	b := append(buf[:0], ids.prefix...)
	b = append(b, "000000000000"[len(digits):]...)
	b = append(b, digits...)
	id := string(b)
	h["X-Request-Id"] = []string{id}
	return id
}
