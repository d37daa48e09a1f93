// Package metadata turns store records into what a guest reads: nova's EC2
// tree and the OpenStack files, per version. Pure functions: no I/O. The API
// and the config drive both build from here, never on their own.
package metadata

import (
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/mdctl/mdctl/store"
)

// CONTRACT STUB: the metadata helper replaces the bodies; signatures stay.

// Errors Lookup returns; the API maps them to statuses.
var (
	ErrNotFound  = errors.New("metadata: not found")                 // 404
	ErrLeafChild = errors.New("metadata: child of a leaf requested") // 500, as nova's TypeError
	// ErrPassword says the path is this version's password endpoint, which
	// the API serves itself (it needs the store).
	ErrPassword = errors.New("metadata: password endpoint")
)

// Options are the inputs beside the instance that shape its metadata.
type Options struct {
	Now            time.Time // versions dated after Now (UTC) are hidden from listings
	DHCPDomain     string    // nova's dhcp_domain, "novalocal" by default
	StaticEnabled  bool      // "StaticJSON" is among vendordata_providers
	StaticVendor   json.RawMessage
	DynamicVendor  map[string]json.RawMessage // name → answer of each DynamicJSON target ({} on failure)
	ForConfigDrive bool                       // adds admin_pass and the config drive's own rules
	RemoteAddr     string                     // the guest's address (local-ipv4 fallback)
	Rand           io.Reader                  // source of random_seed; crypto/rand when nil
}

// Response is one servable document.
type Response struct {
	Body        []byte
	ContentType string
}

// Metadata is an instance's built metadata, safe for concurrent Lookups.
type Metadata struct{}

// File is one file of a config drive.
type File struct {
	Path string // e.g. "openstack/latest/meta_data.json"
	Data []byte
}

// Build prepares an instance's metadata once; Lookups then serve from it.
func Build(v store.InstanceView, o Options) (*Metadata, error) { return &Metadata{}, nil }

// Lookup serves a request path such as "/openstack/latest/meta_data.json"
// or "/2009-04-04/meta-data/" with nova's rules.
func (m *Metadata) Lookup(path string) (Response, error) { return Response{}, ErrNotFound }

// ConfigDriveFiles lists a config drive's files in nova's layout.
func (m *Metadata) ConfigDriveFiles() []File { return nil }

// RootListing is the answer to "/" (no identification needed).
func RootListing(now time.Time) Response { return Response{} }
