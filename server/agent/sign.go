package agent

import "sync"

// maxCachedSignatures bounds the signature cache; past it the cache
// starts over (a node serves far fewer instances than this).
const maxCachedSignatures = 1 << 16

// signer remembers each instance's signature under the current secret:
// HMAC-SHA256 is the same for every request of an instance, and during a
// boot storm each guest asks a dozen times. A new secret empties it.
type signer struct {
	mu     sync.Mutex
	secret string
	sigs   map[string]string
}

// sign is SignInstanceID(secret, instanceID), cached.
func (s *signer) sign(secret, instanceID string) string {
	s.mu.Lock()
	if s.secret != secret || s.sigs == nil || len(s.sigs) >= maxCachedSignatures {
		s.secret, s.sigs = secret, make(map[string]string)
	}
	sig, ok := s.sigs[instanceID]
	s.mu.Unlock()
	if ok {
		return sig
	}
	sig = SignInstanceID(secret, instanceID)
	s.mu.Lock()
	if s.secret == secret {
		s.sigs[instanceID] = sig
	}
	s.mu.Unlock()
	return sig
}

func (a *Agent) sign(secret, instanceID string) string { return a.sigs.sign(secret, instanceID) }
