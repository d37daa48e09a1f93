package api

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/metadata"
)

// TestSessionTokens pins AWS IMDSv2's semantics as the API answers them:
// the token PUT's TTL bounds and its answer, 401 for a bad, expired or
// foreign token, and required mode refusing tokenless requests on both
// trees while optional serves them.
func TestSessionTokens(t *testing.T) {
	e := newEnv(t, map[string]string{"metadata_token_key": "0123456789abcdef0123456789abcdef"})
	vm1, _ := e.addInstance("vm1")
	vm2, _ := e.addInstance("vm2")
	with := func(h map[string]string, kv ...string) map[string]string {
		out := maps.Clone(h)
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	put := func(ttl string) (int, string, string) {
		h := signedHeaders(vm1)
		if ttl != "-" {
			h[metadata.TokenTTLHeader] = ttl
		}
		w := e.do(http.MethodPut, metadata.TokenPath, h, "")
		return w.Code, w.Body.String(), w.Header().Get(metadata.TokenTTLHeader)
	}
	for _, tc := range []struct {
		ttl  string
		code int
	}{{"-", 400}, {"", 400}, {"0", 400}, {"21601", 400}, {"abc", 400}, {"-5", 400}, {"1", 200}, {"21600", 200}, {" 60 ", 200}} {
		code, body, ttlHdr := put(tc.ttl)
		if code != tc.code {
			t.Errorf("PUT with TTL %q: %d %q, want %d", tc.ttl, code, body, tc.code)
		}
		if code == 200 && (ttlHdr != strings.TrimSpace(tc.ttl) || !strings.HasPrefix(body, tokenPrefix)) {
			t.Errorf("PUT with TTL %q: TTL header %q, token %q", tc.ttl, ttlHdr, body)
		}
	}
	if w := e.get(metadata.TokenPath, signedHeaders(vm1)); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", metadata.TokenPath, w.Code)
	}
	_, tok, _ := put("60")

	get := func(path string, h map[string]string) int { return e.get(path, h).Code }
	paths := []string{"/latest/meta-data/instance-id", "/openstack/latest/meta_data.json"}
	for _, p := range paths {
		if c := get(p, with(signedHeaders(vm1), metadata.TokenHeader, tok)); c != 200 {
			t.Errorf("%s with vm1's token: %d", p, c)
		}
		if c := get(p, with(signedHeaders(vm2), metadata.TokenHeader, tok)); c != 401 {
			t.Errorf("%s: vm1's token used by vm2: %d, want 401", p, c)
		}
		if c := get(p, with(signedHeaders(vm1), metadata.TokenHeader, tok[:len(tok)-2]+"AA")); c != 401 {
			t.Errorf("%s with a forged token: %d, want 401", p, c)
		}
		if c := get(p, signedHeaders(vm1)); c != 200 {
			t.Errorf("%s without a token, optional: %d, want 200", p, c)
		}
	}
	e.clock.Advance(61 * time.Second)
	if c := get(paths[0], with(signedHeaders(vm1), metadata.TokenHeader, tok)); c != 401 {
		t.Errorf("an expired token: %d, want 401", c)
	}

	must(t, e.st.SetSetting(t.Context(), "metadata_tokens", "required"))
	_, tok, _ = put("60")
	for _, p := range paths {
		if c := get(p, signedHeaders(vm1)); c != 401 {
			t.Errorf("%s without a token, required: %d, want 401", p, c)
		}
		if c := get(p, with(signedHeaders(vm1), metadata.TokenHeader, tok)); c != 200 {
			t.Errorf("%s with a token, required: %d, want 200", p, c)
		}
	}
}

// TestSessionTokensPerInstance: an instance's metadata_tokens overrides
// the setting either way.
func TestSessionTokensPerInstance(t *testing.T) {
	e := newEnv(t, map[string]string{"metadata_token_key": "0123456789abcdef0123456789abcdef"})
	strict, _ := e.addInstance("strict")
	lax, _ := e.addInstance("lax")
	strict.MetadataTokens, lax.MetadataTokens = "required", "optional"
	must(t, e.st.PutInstance(t.Context(), strict))
	must(t, e.st.PutInstance(t.Context(), lax))
	const p = "/latest/meta-data/instance-id"
	for _, global := range []string{"optional", "required"} {
		must(t, e.st.SetSetting(t.Context(), "metadata_tokens", global))
		if c := e.get(p, signedHeaders(strict)).Code; c != 401 {
			t.Errorf("metadata_tokens=%s, instance required, no token: %d, want 401", global, c)
		}
		if c := e.get(p, signedHeaders(lax)).Code; c != 200 {
			t.Errorf("metadata_tokens=%s, instance optional, no token: %d, want 200", global, c)
		}
	}
}
