package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/store"
)

func TestOptionsFromConfig(t *testing.T) {
	files := map[string]string{"/v.json": `{"motd": "hi"}`, "/bad.json": `{not json`}
	readFile := func(p string) ([]byte, error) {
		if p == "/denied.json" {
			return nil, fs.ErrPermission
		}
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
	}
	tests := []struct {
		name, providers, file string
		wantStatic            bool
		wantVendor            string
		wantWarning           string // "" when no error is expected
	}{
		{name: "no providers", providers: ""},
		{name: "static without path", providers: "StaticJSON", wantStatic: true, wantVendor: "{}"},
		{name: "static file", providers: "StaticJSON,DynamicJSON", file: "/v.json", wantStatic: true, wantVendor: `{"motd": "hi"}`},
		{name: "dynamic only ignores the file", providers: "DynamicJSON", file: "/missing.json"},
		{name: "missing file", providers: "StaticJSON", file: "/missing.json", wantWarning: "vendordata_jsonfile_path[/missing.json]: file does not exist"},
		{name: "unreadable file", providers: "StaticJSON", file: "/denied.json", wantWarning: "vendordata_jsonfile_path[/denied.json]: unexpected IOError when reading"},
		{name: "invalid JSON", providers: "StaticJSON", file: "/bad.json", wantWarning: "vendordata_jsonfile_path[/bad.json]: failed to load json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := store.ParseConfig(map[string]string{
				"vendordata_providers": tt.providers, "vendordata_jsonfile_path": tt.file, "dhcp_domain": "example.org",
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			o, err := OptionsFromConfig(cfg, readFile)
			if tt.wantWarning != "" {
				var vf *VendordataFileError
				if !errors.As(err, &vf) || vf.Warning != tt.wantWarning || !strings.Contains(err.Error(), tt.file) {
					t.Fatalf("err = %v (%+v), want warning %q", err, vf, tt.wantWarning)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.DHCPDomain != "example.org" || o.staticEnabled() != tt.wantStatic || string(o.StaticVendor) != tt.wantVendor {
				t.Errorf("got %+v", o)
			}
			if o.staticEnabled() && !json.Valid(o.StaticVendor) {
				t.Errorf("static vendor %q is not JSON", o.StaticVendor)
			}
		})
	}
}
