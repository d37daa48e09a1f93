package server

import (
	"maps"
	"testing"

	"github.com/mdctl/mdctl/server/admin"
)

// TestMaskedOverrides: /status shows serve's --set values with every
// secret masked, and nothing when there are none.
func TestMaskedOverrides(t *testing.T) {
	got := maskedOverrides(map[string]string{"metadata_proxy_shared_secret": "s3cret", "metadata_token_key": "k", "nova_metadata_port": "18775"})
	want := map[string]string{"metadata_proxy_shared_secret": admin.Masked, "metadata_token_key": admin.Masked, "nova_metadata_port": "18775"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := maskedOverrides(nil); got != nil {
		t.Errorf("no overrides: %v", got)
	}
}
