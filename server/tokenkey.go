package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/mdctl/mdctl/store"
)

// tokenKeySetting is the session tokens' HMAC key (server/api/tokens.go).
const tokenKeySetting = "metadata_token_key"

// ensureTokenKey gives the deployment a session-token key the first time
// an API starts on its store, in one transaction, so serves starting at
// once agree on one key and tokens outlive restarts.
func ensureTokenKey(ctx context.Context, st store.Store) error {
	return st.Update(ctx, func(tx store.Tx) error {
		set, err := tx.Settings(ctx)
		if err != nil {
			return fmt.Errorf("read settings: %w", err)
		}
		if set[tokenKeySetting] != "" {
			return nil
		}
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		return tx.SetSetting(ctx, tokenKeySetting, hex.EncodeToString(b[:]))
	})
}
