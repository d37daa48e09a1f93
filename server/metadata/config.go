package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/mdctl/mdctl/store"
)

// VendordataFileError says vendordata_jsonfile_path could not be used.
// Warning is the line nova logs for it, so every caller logs the same.
type VendordataFileError struct {
	Path    string
	Warning string
	Err     error
}

func (e *VendordataFileError) Error() string { return e.Err.Error() }
func (e *VendordataFileError) Unwrap() error { return e.Err }

// OptionsFromConfig fills the Options that follow from the settings in
// force: dhcp_domain and the StaticJSON vendor data, read through readFile
// (this package does no I/O itself) as nova's JsonFileVendorData does: no
// path gives {}, an unreadable or invalid file is a *VendordataFileError.
// Callers add what is theirs: Now, RemoteAddr, ForConfigDrive and the
// DynamicJSON answers.
func OptionsFromConfig(cfg store.Config, readFile func(string) ([]byte, error)) (Options, error) {
	o := Options{DHCPDomain: cfg.DHCPDomain, Providers: slices.Clone(cfg.VendordataProviders)}
	if !o.staticEnabled() {
		return o, nil
	}
	path := cfg.VendordataJSONFile
	if path == "" {
		o.StaticVendor = json.RawMessage("{}")
		return o, nil
	}
	data, err := readFile(path)
	if err != nil {
		warning := fmt.Sprintf("vendordata_jsonfile_path[%s]: unexpected IOError when reading", path)
		if errors.Is(err, fs.ErrNotExist) {
			warning = fmt.Sprintf("vendordata_jsonfile_path[%s]: file does not exist", path)
		}
		return Options{}, &VendordataFileError{Path: path, Warning: warning, Err: fmt.Errorf("read vendordata file %s: %w", path, err)}
	}
	if !json.Valid(data) {
		return Options{}, &VendordataFileError{Path: path,
			Warning: fmt.Sprintf("vendordata_jsonfile_path[%s]: failed to load json", path),
			Err:     fmt.Errorf("vendordata file %s: invalid JSON", path)}
	}
	o.StaticVendor = json.RawMessage(data)
	return o, nil
}
