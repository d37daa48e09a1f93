package agent

import "testing"

func TestSignerCachesPerSecret(t *testing.T) {
	var s signer
	tests := []struct{ secret, id string }{
		{"s1", "i-1"}, {"s1", "i-2"}, {"s1", "i-1"}, {"s2", "i-1"}, {"s1", "i-1"},
	}
	for _, tc := range tests {
		if got, want := s.sign(tc.secret, tc.id), SignInstanceID(tc.secret, tc.id); got != want {
			t.Fatalf("sign(%q, %q) = %s, want %s", tc.secret, tc.id, got, want)
		}
	}
	if len(s.sigs) != 1 || s.secret != "s1" {
		t.Fatalf("after a secret change the cache holds %d entries under %q, want 1 under s1", len(s.sigs), s.secret)
	}
}

func BenchmarkSignCached(b *testing.B) {
	var s signer
	for b.Loop() {
		s.sign("bench-shared-secret", "6f1c0b2e-0000-4000-8000-000000005000")
	}
}
