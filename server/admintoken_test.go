package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/server/admin"
)

// TestAdminToken: a TCP admin endpoint always has a token; a loopback one
// makes <data-dir>/admin.token, a non-loopback one is refused unless the
// operator gives --admin-token-file.
func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	given := filepath.Join(dir, "given.token")
	os.WriteFile(given, []byte("operator-chosen-secret-0123\n"), 0o600)
	for _, tc := range []struct {
		listen, file, want, err string
	}{
		{"", "", "", ""},
		{"0.0.0.0:9100", "", "", "not a loopback address"},
		{"10.0.0.5:9100", "", "", "--admin-token-file"},
		{"10.0.0.5:9100", given, "operator-chosen-secret-0123", ""},
		{"127.0.0.1:9100", "", "<made>", ""},
	} {
		tok, err := Options{DataDir: dir, AdminListen: tc.listen, AdminTokenFile: tc.file}.adminToken()
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.listen, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.listen, err)
		case tc.want == "<made>":
			made, _ := os.ReadFile(filepath.Join(dir, admin.TokenFileName))
			if tok == "" || strings.TrimSpace(string(made)) != tok {
				t.Errorf("%s: token %q, file %q", tc.listen, tok, made)
			}
		case tok != tc.want:
			t.Errorf("%s: token %q, want %q", tc.listen, tok, tc.want)
		}
	}
}
