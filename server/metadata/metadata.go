// Package metadata turns store records into what a guest reads: nova's EC2
// tree and the OpenStack files, per version, with nova's path rules,
// listings and JSON encoding. Build does the work once per instance;
// Lookup answers from precomputed bodies. Pure functions: it must never do
// I/O (beyond reading random bytes for random_seed) or know about HTTP. The
// API and the config drive both build from here, never on their own.
package metadata

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdctl/mdctl/store"
)

// Errors Lookup returns; the API maps them to statuses.
var (
	ErrNotFound  = errors.New("metadata: not found")                 // 404
	ErrLeafChild = errors.New("metadata: child of a leaf requested") // 500, as nova's TypeError
	// ErrPassword says the path is this version's password endpoint, which
	// the API serves itself (it needs the store).
	ErrPassword = errors.New("metadata: password endpoint")
	// ErrVendorData2 says the path is vendor_data2.json of a Metadata built
	// with DynamicPerRequest: the caller asks the DynamicJSON targets, as
	// nova does on every such request, and serves VendorData2(answers).
	ErrVendorData2 = errors.New("metadata: vendor_data2.json asks the DynamicJSON targets")
)

// Content types nova sets.
const (
	TextPlain       = "text/plain"
	ApplicationJSON = "application/json"
)

// Options are the inputs beside the instance that shape its metadata.
type Options struct {
	Now        time.Time // versions dated after Now (UTC) are hidden from listings; zero: the current time
	DHCPDomain string    // nova's dhcp_domain, "novalocal" by default; "" appends none
	// Providers is vendordata_providers in its configured order: it orders
	// vendor_data2.json's keys, and StaticJSON among them serves
	// vendor_data.json.
	Providers    []string
	StaticVendor json.RawMessage
	// DynamicVendor holds each DynamicJSON target's answer ({} on failure)
	// in vendordata_dynamic_targets order, each name once.
	DynamicVendor []VendorAnswer
	// DynamicPerRequest leaves the DynamicJSON answers to each request of
	// vendor_data2.json, as nova's _vendor_data2 asks the targets every
	// time (and only then): Lookup returns ErrVendorData2 for it. The API
	// only; a config drive is written once, with DynamicVendor.
	DynamicPerRequest bool
	ForConfigDrive    bool   // adds admin_pass and the config drive's own rules
	RemoteAddr        string // the guest's address (local-ipv4 fallback)
	// Rand is the source of random_seed; crypto/rand when nil. Reads are
	// serialised, so any reader will do; a failing one falls back to
	// crypto/rand, since a document must never lose its seed.
	Rand io.Reader
	// Files are injected files (nova's personality): listed in
	// meta_data.json "files" and served at /openstack/content/NNNN.
	Files []File
}

// Provider names of vendordata_providers.
const (
	StaticJSON  = "StaticJSON"
	DynamicJSON = "DynamicJSON"
)

// VendorAnswer is what one DynamicJSON target answered, under the name its
// name@url entry gives it.
type VendorAnswer struct {
	Name string
	Body json.RawMessage
}

// staticEnabled is nova's 'StaticJSON' in CONF.api.vendordata_providers.
func (o Options) staticEnabled() bool { return slices.Contains(o.Providers, StaticJSON) }

// Response is one servable document. Body is shared between Lookups:
// callers must not modify it.
type Response struct {
	Body        []byte
	ContentType string
}

// Metadata is an instance's built metadata, safe for concurrent Lookups.
type Metadata struct {
	ec2      map[string]*node // version and "latest" → tree under /<version>/
	ec2List  Response         // "/" and "/ec2"
	osList   Response         // "/openstack": versions not after Now, and latest
	os       map[string]*osVersion
	content  map[string][]byte
	userData []byte // nil: none
	network  []byte
	vendor   []byte // nil: StaticJSON not enabled
	vendor2  []byte
	cdEC2    []File // config drive EC2 files, built once
	warnings []string

	// For vendor_data2.json per request (Options.DynamicPerRequest).
	vendor2Later bool
	providers    []string
	static       any // the StaticJSON document, parsed

	randMu sync.Mutex
	rand   io.Reader // nil: crypto/rand
}

// osVersion holds what one OpenStack version serves.
type osVersion struct {
	name     string // the real version, also for "latest"
	listing  []byte
	metaData seededDoc
}

// File is one file of a config drive.
type File struct {
	Path string // e.g. "openstack/latest/meta_data.json"
	Data []byte
}

// Build prepares an instance's metadata once; Lookups then serve from it.
func Build(v store.InstanceView, o Options) (*Metadata, error) {
	if v.Instance.ID == "" {
		return nil, errors.New("metadata: build: instance has no id")
	}
	if o.ForConfigDrive && o.DynamicPerRequest {
		return nil, errors.New("metadata: build: a config drive is written once; give DynamicVendor, not DynamicPerRequest")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := &Metadata{
		ec2:      make(map[string]*node, len(ec2Versions)+1),
		os:       make(map[string]*osVersion, len(openstackVersions)+1),
		content:  make(map[string][]byte, len(o.Files)),
		userData: v.Instance.UserData,
		network:  pyDumps(networkData(v.Ports)),
		ec2List:  RootListing(now),
		osList:   textResponse(strings.Join(visibleVersions(now), "\n")),
		rand:     o.Rand,
	}
	static := vendorJSON(o.StaticVendor)
	m.providers, m.static, m.vendor2Later = o.Providers, static, o.DynamicPerRequest
	if !o.DynamicPerRequest {
		v2, warnings := vendorData2(o.Providers, static, o.DynamicVendor)
		m.vendor2, m.warnings = pyDumps(v2), warnings
	}
	if o.staticEnabled() {
		m.vendor = pyDumps(static)
	}
	for i, f := range o.Files {
		m.content[contentKey(i)] = f.Data
	}
	for _, ver := range ec2Versions {
		m.ec2[ver] = newTree(ec2Root(v, o, ver))
	}
	m.ec2["latest"] = m.ec2[ec2Versions[len(ec2Versions)-1]]
	for _, ver := range openstackVersions {
		m.os[ver] = &osVersion{
			name:     ver,
			listing:  []byte(strings.Join(versionListing(v.Instance.UserData != nil, ver), "\n")),
			metaData: newSeededDoc(pyDumps(metaDataJSON(v, o, ver))),
		}
	}
	m.os["latest"] = m.os[openstackVersions[len(openstackVersions)-1]]
	m.cdEC2 = configDriveEC2(v, o)
	return m, nil
}

// Warnings are the lines nova logs at warning level while it serves this
// metadata (vendor_data2.json's duplicate keys); callers log them.
func (m *Metadata) Warnings() []string { return slices.Clone(m.warnings) }

// VendorData2 is vendor_data2.json with the DynamicJSON answers of this
// request, for a Metadata built with DynamicPerRequest, and the warnings
// nova logs while making it.
func (m *Metadata) VendorData2(answers []VendorAnswer) (Response, []string) {
	doc, warnings := vendorData2(m.providers, m.static, answers)
	return Response{Body: pyDumps(doc), ContentType: ApplicationJSON}, warnings
}

// visibleVersions are the OpenStack versions /openstack lists: those not
// dated after now's UTC day, then "latest".
func visibleVersions(now time.Time) []string {
	today := now.UTC().Format("2006-01-02")
	var out []string
	for _, v := range openstackVersions {
		if v <= today {
			out = append(out, v)
		}
	}
	return append(out, "latest")
}

// Lookup serves a request path such as "/openstack/latest/meta_data.json"
// or "/2009-04-04/meta-data/" with nova's rules.
func (m *Metadata) Lookup(path string) (Response, error) {
	tokens := pathTokens(path)
	if len(tokens) == 1 {
		if tokens[0] == "openstack" {
			return m.osList, nil
		}
		return m.ec2List, nil
	}
	if tokens[0] == "openstack" {
		return m.lookupOpenStack(tokens[1:])
	}
	root, ok := m.ec2[tokens[1]]
	if !ok {
		return Response{}, ErrNotFound
	}
	n, err := root.walk(tokens[2:])
	if err != nil {
		return Response{}, err
	}
	return Response{Body: n.body, ContentType: TextPlain}, nil
}

// lookupOpenStack follows nova's RouteConfiguration: tokens are the version
// and the rest joined as one handler name.
func (m *Metadata) lookupOpenStack(tokens []string) (Response, error) {
	if tokens[0] == "content" {
		if len(tokens) != 2 {
			return Response{}, ErrNotFound
		}
		data, ok := m.content[tokens[1]]
		if !ok {
			return Response{}, ErrNotFound
		}
		return Response{Body: data, ContentType: TextPlain}, nil
	}
	ver, ok := m.os[tokens[0]]
	if !ok {
		return Response{}, ErrNotFound
	}
	name := "version"
	if len(tokens) > 1 {
		name = strings.Join(tokens[1:], "/")
	}
	switch name {
	case "version":
		return Response{Body: ver.listing, ContentType: TextPlain}, nil
	case "meta_data.json":
		return Response{Body: m.seeded(ver.metaData), ContentType: ApplicationJSON}, nil
	case "user_data":
		if m.userData == nil {
			return Response{}, ErrNotFound
		}
		return Response{Body: m.userData, ContentType: TextPlain}, nil
	case "password":
		if !osSince(grizzly, ver.name) {
			return Response{}, ErrNotFound
		}
		return Response{}, ErrPassword
	case "vendor_data.json":
		if !osSince(havana, ver.name) || m.vendor == nil {
			return Response{}, ErrNotFound
		}
		return Response{Body: m.vendor, ContentType: ApplicationJSON}, nil
	case "network_data.json":
		// nova checks no version here: every version serves it.
		return Response{Body: m.network, ContentType: TextPlain}, nil
	case "vendor_data2.json":
		if !osSince(newtonTwo, ver.name) {
			return Response{}, ErrNotFound
		}
		if m.vendor2Later {
			return Response{}, ErrVendorData2
		}
		return Response{Body: m.vendor2, ContentType: ApplicationJSON}, nil
	case "content":
		// nova routes this name to _handle_content with the wrong
		// arguments: a TypeError, so a 500.
		return Response{}, ErrLeafChild
	}
	return Response{}, ErrNotFound
}

// seedLen is the size of random_seed before base64, as nova's os.urandom(512).
const seedLen = 512

// seeded completes a document with a fresh random_seed, as nova makes one
// per request.
func (m *Metadata) seeded(d seededDoc) []byte {
	if d.suffix == nil {
		return d.prefix
	}
	encLen := base64.StdEncoding.EncodedLen(seedLen)
	out := make([]byte, 0, len(d.prefix)+encLen+2+len(d.suffix))
	out = append(out, d.prefix...)
	out = append(out, '"')
	var seed [seedLen]byte
	m.readSeed(seed[:])
	out = base64.StdEncoding.AppendEncode(out, seed[:])
	out = append(out, '"')
	return append(out, d.suffix...)
}

func (m *Metadata) readSeed(b []byte) {
	if m.rand != nil {
		m.randMu.Lock()
		_, err := io.ReadFull(m.rand, b)
		m.randMu.Unlock()
		if err == nil {
			return
		}
	}
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
}

// ConfigDriveFiles lists a config drive's files in nova's layout, sorted by
// path: EC2 2009-04-04 and latest (meta-data.json without public-keys'
// _name, user-data), every OpenStack version and latest (no date filter),
// content files, and no password file.
func (m *Metadata) ConfigDriveFiles() []File {
	files := slices.Clone(m.cdEC2)
	for _, name := range append(slices.Clone(openstackVersions), "latest") {
		ver := m.os[name]
		dir := "openstack/" + name + "/"
		files = append(files, File{dir + "meta_data.json", m.seeded(ver.metaData)})
		if m.userData != nil {
			files = append(files, File{dir + "user_data", m.userData})
		}
		if osSince(havana, ver.name) && m.vendor != nil {
			files = append(files, File{dir + "vendor_data.json", m.vendor})
		}
		if osSince(liberty, ver.name) {
			files = append(files, File{dir + "network_data.json", m.network})
		}
		if osSince(newtonTwo, ver.name) {
			files = append(files, File{dir + "vendor_data2.json", m.vendor2})
		}
	}
	for key, data := range m.content {
		files = append(files, File{"openstack/content/" + key, data})
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files
}

// configDriveSkipped is nova's config_drive_skip_versions default: every
// EC2 version but 2009-04-04 ("latest" is never skipped).
func configDriveSkipped(version string) bool { return version != "2009-04-04" && version != "latest" }

func configDriveEC2(v store.InstanceView, o Options) []File {
	var files []File
	for _, ver := range append(slices.Clone(ec2Versions), "latest") {
		if configDriveSkipped(ver) {
			continue
		}
		real := ver
		if ver == "latest" {
			real = ec2Versions[len(ec2Versions)-1]
		}
		dir := "ec2/" + ver + "/"
		files = append(files, File{dir + "meta-data.json", pyDumps(ec2MetaData(v, o, real, false))})
		if v.Instance.UserData != nil {
			files = append(files, File{dir + "user-data", v.Instance.UserData})
		}
	}
	return files
}

// RootListing is the answer to "/" (no identification needed): the EC2
// versions plus latest, one per line. now is unused (EC2 versions are never
// hidden) but kept so the API needs no special case.
func RootListing(now time.Time) Response {
	return textResponse(strings.Join(append(slices.Clone(ec2Versions), "latest"), "\n"))
}

func textResponse(s string) Response {
	return Response{Body: []byte(s), ContentType: TextPlain}
}
