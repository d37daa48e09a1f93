package metadata

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustBuild(t testing.TB) *Metadata {
	t.Helper()
	m, err := Build(fullView(), fullOptions())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookupPathRules(t *testing.T) {
	m := mustBuild(t)
	ec2List := "1.0\n2007-01-19\n2007-03-01\n2007-08-29\n2007-10-10\n2007-12-15\n2008-02-01\n2008-09-01\n2009-04-04\nlatest"
	cases := []struct {
		path  string
		want  string // body, when err is nil
		ctype string
		err   error
	}{
		// version lists
		{path: "", want: ec2List, ctype: TextPlain},
		{path: "/", want: ec2List, ctype: TextPlain},
		{path: "/ec2", want: ec2List, ctype: TextPlain},
		{path: "/ec2/", want: ec2List, ctype: TextPlain},
		{path: "//latest/meta-data", want: ec2List, ctype: TextPlain}, // POSIX keeps two leading slashes; nova sees "" first
		{path: "/..", want: ec2List, ctype: TextPlain},
		// trailing slash, "//", ".", ".." and the ec2 prefix
		{path: "/latest/meta-data/hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/latest/meta-data/hostname/", want: "web-1.novalocal", ctype: TextPlain},
		{path: "latest/meta-data/hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/latest//meta-data///hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "///latest/meta-data/hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/latest/./meta-data/x/../hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/../../latest/meta-data/hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/ec2/latest/meta-data/hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/ec2/2009-04-04/meta-data/instance-id", want: "i-0000002a", ctype: TextPlain},
		{path: "/latest", want: "meta-data/\nuser-data", ctype: TextPlain},
		{path: "/latest/", want: "meta-data/\nuser-data", ctype: TextPlain},
		{path: "/latest/user-data", want: "#cloud-config\nruncmd:\n  - echo hello\n", ctype: TextPlain},
		// public-keys rendering
		{path: "/latest/meta-data/public-keys", want: "0=mykey", ctype: TextPlain},
		{path: "/latest/meta-data/public-keys/0/", want: "openssh-key", ctype: TextPlain},
		{path: "/latest/meta-data/public-keys/0/openssh-key", want: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1mdctl user@host\n", ctype: TextPlain},
		{path: "/latest/meta-data/public-keys/1", err: ErrNotFound},
		// keys by version ("since")
		{path: "/1.0/meta-data/local-hostname", err: ErrNotFound},
		{path: "/2007-01-19/meta-data/local-hostname", want: "web-1.novalocal", ctype: TextPlain},
		{path: "/2007-03-01/meta-data/instance-type", err: ErrNotFound},
		{path: "/2007-08-29/meta-data/instance-type", want: "m1.small", ctype: TextPlain},
		{path: "/2007-10-10/meta-data/block-device-mapping", err: ErrNotFound},
		{path: "/2007-12-15/meta-data/block-device-mapping/root", want: "/dev/sda1", ctype: TextPlain},
		{path: "/2007-12-15/meta-data/placement", err: ErrNotFound},
		{path: "/2008-02-01/meta-data/placement/availability-zone", want: "nova", ctype: TextPlain},
		{path: "/2008-02-01/meta-data/instance-action", err: ErrNotFound},
		{path: "/2008-09-01/meta-data/instance-action", want: "none", ctype: TextPlain},
		// bad versions and names
		{path: "/2009-04-05/meta-data", err: ErrNotFound},
		{path: "/foo", err: ErrNotFound},
		{path: "/latest/meta-data/nope", err: ErrNotFound},
		{path: "/latest/nope", err: ErrNotFound},
		{path: "/openstack/2012-01-01", err: ErrNotFound},
		{path: "/openstack/2012-01-01/meta_data.json", err: ErrNotFound},
		// a child of a leaf: TypeError (500) for the last token, KeyError
		// (404) for an earlier one; lists "contain" their elements
		{path: "/latest/meta-data/hostname/x", err: ErrLeafChild},
		{path: "/latest/meta-data/hostname/x/y", err: ErrNotFound},
		{path: "/latest/meta-data/ami-launch-index/0", err: ErrLeafChild},
		{path: "/latest/user-data/x", err: ErrLeafChild},
		{path: "/latest/meta-data/public-keys/0/openssh-key/x", err: ErrLeafChild},
		// One line per binding of each port, not deduplicated (nova/network/
		// security_group_api.py get_instances_security_groups_bindings).
		{path: "/latest/meta-data/security-groups", want: "default\nweb\ndefault", ctype: TextPlain},
		{path: "/latest/meta-data/security-groups/default", err: ErrLeafChild},
		{path: "/latest/meta-data/security-groups/other", err: ErrNotFound},
		// OpenStack tree
		{path: "/openstack", want: "2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n2017-02-22\n2018-08-27\n2020-10-14\nlatest", ctype: TextPlain},
		{path: "/openstack/", want: "2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n2017-02-22\n2018-08-27\n2020-10-14\nlatest", ctype: TextPlain},
		{path: "/openstack/2012-08-10", want: "meta_data.json\nuser_data", ctype: TextPlain},
		{path: "/openstack/2012-08-10/", want: "meta_data.json\nuser_data", ctype: TextPlain},
		{path: "/openstack/2013-04-04", want: "meta_data.json\nuser_data\npassword", ctype: TextPlain},
		{path: "/openstack/latest", want: "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json", ctype: TextPlain},
		{path: "/openstack/latest/version", want: "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json", ctype: TextPlain},
		{path: "/openstack/2025-04-04/user_data", want: "#cloud-config\nruncmd:\n  - echo hello\n", ctype: TextPlain}, // hidden from the list, still served
		{path: "/openstack/latest/user_data/", want: "#cloud-config\nruncmd:\n  - echo hello\n", ctype: TextPlain},
		{path: "/openstack/2012-08-10/password", err: ErrNotFound},
		{path: "/openstack/2013-04-04/password", err: ErrPassword},
		{path: "/openstack/latest/password/", err: ErrPassword},
		{path: "/openstack/2013-04-04/vendor_data.json", err: ErrNotFound},
		{path: "/openstack/2013-10-17/vendor_data.json", want: `{"cloud-init": "#cloud-config\npackages: [htop]", "n": [1, 2.5, 100.0, 0], "nested": {"b": true, "a": null}}`, ctype: ApplicationJSON},
		{path: "/openstack/2016-06-30/vendor_data2.json", err: ErrNotFound},
		{path: "/openstack/2016-10-06/vendor_data2.json", want: `{"static": {"cloud-init": "#cloud-config\npackages: [htop]", "n": [1, 2.5, 100.0, 0], "nested": {"b": true, "a": null}}, "zeta": {}, "billing": {"plan": "gold", "id": 7}}`, ctype: ApplicationJSON},
		{path: "/openstack/latest/meta_data.json/x", err: ErrNotFound},
		{path: "/openstack/latest/content", err: ErrLeafChild},
		{path: "/openstack/latest/nope", err: ErrNotFound},
		{path: "/openstack/content", err: ErrNotFound},
		{path: "/openstack/content/0000", err: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			r, err := m.Lookup(tc.path)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Lookup(%q) error = %v, want %v", tc.path, err, tc.err)
			}
			if err != nil {
				return
			}
			if string(r.Body) != tc.want || r.ContentType != tc.ctype {
				t.Errorf("Lookup(%q) = %q (%s), want %q (%s)", tc.path, r.Body, r.ContentType, tc.want, tc.ctype)
			}
		})
	}
}

func TestNetworkDataEveryVersion(t *testing.T) {
	// nova's _network_data checks no version, so even 2012-08-10 serves it.
	m := mustBuild(t)
	latest, err := m.Lookup("/openstack/latest/network_data.json")
	if err != nil {
		t.Fatal(err)
	}
	old, err := m.Lookup("/openstack/2012-08-10/network_data.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old.Body, latest.Body) || old.ContentType != TextPlain {
		t.Errorf("2012-08-10 network_data.json = %q (%s), want the latest body as text/plain", old.Body, old.ContentType)
	}
}

func TestHiddenVersions(t *testing.T) {
	cases := []struct {
		now  time.Time
		want string
	}{
		{time.Date(2012, 8, 9, 23, 59, 0, 0, time.UTC), "latest"},
		{time.Date(2012, 8, 10, 0, 0, 0, 0, time.UTC), "2012-08-10\nlatest"},
		// 2025-04-04 01:00 in UTC+3 is still 2025-04-03 in UTC.
		{time.Date(2025, 4, 4, 1, 0, 0, 0, time.FixedZone("UTC+3", 3*3600)), "2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n2017-02-22\n2018-08-27\n2020-10-14\nlatest"},
		{time.Date(2025, 4, 4, 0, 0, 0, 0, time.UTC), "2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n2017-02-22\n2018-08-27\n2020-10-14\n2025-04-04\nlatest"},
	}
	for _, tc := range cases {
		t.Run(tc.now.String(), func(t *testing.T) {
			o := fullOptions()
			o.Now = tc.now
			m, err := Build(fullView(), o)
			if err != nil {
				t.Fatal(err)
			}
			r, err := m.Lookup("/openstack")
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Body) != tc.want {
				t.Errorf("/openstack at %v = %q, want %q", tc.now, r.Body, tc.want)
			}
			// Hidden or not, every version is served.
			if _, err := m.Lookup("/openstack/2025-04-04/meta_data.json"); err != nil {
				t.Errorf("hidden version not served: %v", err)
			}
		})
	}
}

func TestRandomSeed(t *testing.T) {
	for _, rnd := range []struct {
		name string
		opts func() Options
	}{
		{"deterministic", fullOptions},
		{"crypto", func() Options { o := fullOptions(); o.Rand = nil; return o }},
	} {
		t.Run(rnd.name, func(t *testing.T) {
			m, err := Build(fullView(), rnd.opts())
			if err != nil {
				t.Fatal(err)
			}
			seed := func(path string) []byte {
				t.Helper()
				r, err := m.Lookup(path)
				if err != nil {
					t.Fatal(err)
				}
				var doc map[string]any
				if err := json.Unmarshal(r.Body, &doc); err != nil {
					t.Fatalf("%s is not JSON: %v\n%s", path, err, r.Body)
				}
				s, ok := doc["random_seed"].(string)
				if !ok {
					t.Fatalf("%s: random_seed missing or not a string: %v", path, doc["random_seed"])
				}
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatalf("random_seed is not base64: %v", err)
				}
				if len(raw) != seedLen {
					t.Fatalf("random_seed decodes to %d bytes, want %d", len(raw), seedLen)
				}
				return raw
			}
			a, b := seed("/openstack/latest/meta_data.json"), seed("/openstack/latest/meta_data.json")
			if bytes.Equal(a, b) {
				t.Error("random_seed did not change between calls")
			}
			seed("/openstack/2013-04-04/meta_data.json")

			r, err := m.Lookup("/openstack/2012-08-10/meta_data.json")
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(r.Body, []byte("random_seed")) {
				t.Error("2012-08-10 meta_data.json has a random_seed (since 2013-04-04)")
			}
		})
	}
}

// failingReader fails every read, to show a broken Options.Rand never
// leaves a document without its seed.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestRandomSeedFallback(t *testing.T) {
	o := fullOptions()
	o.Rand = failingReader{}
	m, err := Build(fullView(), o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Lookup("/openstack/latest/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Seed string `json:"random_seed"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(doc.Seed)
	if err != nil || len(raw) != seedLen {
		t.Fatalf("seed = %d bytes, %v", len(raw), err)
	}
}

func TestMetaDataKeysByVersion(t *testing.T) {
	m := mustBuild(t)
	base := []string{"uuid", "meta", "public_keys", "keys", "hostname", "name", "launch_index", "availability_zone"}
	cases := []struct {
		version string
		extra   []string
	}{
		{"2012-08-10", nil},
		{"2013-04-04", []string{"random_seed"}},
		{"2015-10-15", []string{"random_seed", "project_id"}},
		{"2016-06-30", []string{"random_seed", "project_id", "devices"}},
		{"2020-10-14", []string{"random_seed", "project_id", "devices", "dedicated_cpus"}},
		{"latest", []string{"random_seed", "project_id", "devices", "dedicated_cpus"}},
	}
	for _, tc := range cases {
		t.Run(tc.version, func(t *testing.T) {
			r, err := m.Lookup("/openstack/" + tc.version + "/meta_data.json")
			if err != nil {
				t.Fatal(err)
			}
			if r.ContentType != ApplicationJSON {
				t.Errorf("content type %q", r.ContentType)
			}
			got := jsonKeys(t, r.Body)
			want := append(append([]string{}, base...), tc.extra...)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("keys = %v, want %v", got, want)
			}
		})
	}
}

// jsonKeys returns a JSON object's top-level keys in document order.
func jsonKeys(t *testing.T, body []byte) []string {
	t.Helper()
	v, err := parsePy(body)
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	o, ok := v.(obj)
	if !ok {
		t.Fatalf("not an object: %s", body)
	}
	keys := make([]string, len(o))
	for i, m := range o {
		keys[i] = m.key
	}
	return keys
}

func TestAdminPassOnlyOnConfigDrive(t *testing.T) {
	m := mustBuild(t)
	r, err := m.Lookup("/openstack/latest/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(r.Body, []byte("admin_pass")) {
		t.Error("the API serves admin_pass")
	}
	o := fullOptions()
	o.ForConfigDrive = true
	cd, err := Build(fullView(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cd.ConfigDriveFiles() {
		if strings.HasSuffix(f.Path, "/meta_data.json") && !bytes.Contains(f.Data, []byte(`"admin_pass": "s3cret"`)) {
			t.Errorf("%s lacks admin_pass", f.Path)
		}
	}
	v := fullView()
	v.Instance.AdminPass = ""
	cd, err = Build(v, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cd.ConfigDriveFiles() {
		if bytes.Contains(f.Data, []byte("admin_pass")) {
			t.Errorf("%s has admin_pass though none is set", f.Path)
		}
	}
}

func TestConfigDriveLayout(t *testing.T) {
	o := fullOptions()
	o.ForConfigDrive = true
	o.Files = []File{{Path: "/etc/motd", Data: []byte("hello\n")}}
	m, err := Build(fullView(), o)
	if err != nil {
		t.Fatal(err)
	}
	files := m.ConfigDriveFiles()
	var paths []string
	for i, f := range files {
		paths = append(paths, f.Path)
		if i > 0 && files[i-1].Path >= f.Path {
			t.Errorf("not sorted: %q then %q", files[i-1].Path, f.Path)
		}
		if strings.Contains(f.Path, "password") {
			t.Errorf("config drive has a password file %q", f.Path)
		}
		if strings.HasSuffix(f.Path, "meta-data.json") && bytes.Contains(f.Data, []byte("_name")) {
			t.Errorf("%s keeps public-keys' _name", f.Path)
		}
		if strings.HasSuffix(f.Path, ".json") {
			var v any
			if err := json.Unmarshal(f.Data, &v); err != nil {
				t.Errorf("%s is not JSON: %v", f.Path, err)
			}
		}
	}
	has := func(p string) bool {
		for _, q := range paths {
			if q == p {
				return true
			}
		}
		return false
	}
	for _, p := range []string{
		"ec2/2009-04-04/meta-data.json", "ec2/2009-04-04/user-data", "ec2/latest/meta-data.json", "ec2/latest/user-data",
		"openstack/2012-08-10/meta_data.json", "openstack/2012-08-10/user_data",
		"openstack/2013-10-17/vendor_data.json", "openstack/2015-10-15/network_data.json",
		"openstack/2016-10-06/vendor_data2.json", "openstack/2025-04-04/meta_data.json",
		"openstack/latest/meta_data.json", "openstack/latest/vendor_data2.json",
		"openstack/content/0000",
	} {
		if !has(p) {
			t.Errorf("config drive lacks %s", p)
		}
	}
	for _, p := range []string{
		"ec2/1.0/meta-data.json", "ec2/2008-09-01/meta-data.json",
		"openstack/2013-04-04/vendor_data.json", "openstack/2013-10-17/network_data.json",
		"openstack/2016-06-30/vendor_data2.json",
	} {
		if has(p) {
			t.Errorf("config drive has %s", p)
		}
	}
	// The injected file is listed in meta_data.json and served by the API too.
	r, err := m.Lookup("/openstack/content/0000")
	if err != nil || string(r.Body) != "hello\n" {
		t.Errorf("content/0000 = %q, %v", r.Body, err)
	}
	md, err := m.Lookup("/openstack/latest/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md.Body, []byte(`"files": [{"path": "/etc/motd", "content_path": "/content/0000"}]`)) {
		t.Errorf("meta_data.json lacks files: %s", md.Body)
	}
}

// TestVendorData pins nova's _vendor_data and _vendor_data2
// (nova/api/metadata/base.py): vendor_data.json is StaticJSON's file or a
// 404; vendor_data2.json walks vendordata_providers in order, StaticJSON
// setting "static" (keeping the place a target gave it) and DynamicJSON
// adding its targets in order, a key already present dropped with
// "Removing duplicate metadata key: %s".
func TestVendorData(t *testing.T) {
	static := []string{StaticJSON}
	dyn := func(kv ...string) []VendorAnswer {
		var out []VendorAnswer
		for i := 0; i < len(kv); i += 2 {
			out = append(out, VendorAnswer{kv[i], json.RawMessage(kv[i+1])})
		}
		return out
	}
	cases := []struct {
		name  string
		opts  Options
		v1    string // "" means ErrNotFound
		v2    string
		warns []string
	}{
		{name: "disabled", opts: Options{}, v1: "", v2: "{}"},
		{name: "static without file", opts: Options{Providers: static}, v1: "{}", v2: `{"static": {}}`},
		{name: "static invalid", opts: Options{Providers: static, StaticVendor: json.RawMessage(`{nope`)}, v1: "{}", v2: `{"static": {}}`},
		{name: "static list", opts: Options{Providers: static, StaticVendor: json.RawMessage(` [1, "a"] `)}, v1: `[1, "a"]`, v2: `{"static": [1, "a"]}`},
		{
			name: "dynamic only: targets in configured order, a target named static kept",
			opts: Options{Providers: []string{DynamicJSON}, DynamicVendor: dyn("zz", `{}`, "static", `{"x":1}`, "b", `oops`)},
			v1:   "", v2: `{"zz": {}, "static": {"x": 1}, "b": {}}`,
		},
		{
			name: "answers without DynamicJSON enabled are not served",
			opts: Options{Providers: static, DynamicVendor: dyn("a", `{}`)},
			v1:   "{}", v2: `{"static": {}}`,
		},
		{
			name: "StaticJSON first: a target named static is dropped with nova's warning",
			opts: Options{Providers: []string{StaticJSON, DynamicJSON}, DynamicVendor: dyn("b", `1`, "static", `2`, "a", `3`)},
			v1:   "{}", v2: `{"static": {}, "b": 1, "a": 3}`,
			warns: []string{"Removing duplicate metadata key: static"},
		},
		{
			name: "DynamicJSON first: the targets lead, and StaticJSON's file replaces a target's static in its place",
			opts: Options{Providers: []string{DynamicJSON, StaticJSON}, StaticVendor: json.RawMessage(`{"s": 1}`),
				DynamicVendor: dyn("b", `1`, "static", `2`, "a", `3`)},
			v1: `{"s": 1}`, v2: `{"b": 1, "static": {"s": 1}, "a": 3}`,
		},
		{
			name: "a provider listed twice: DynamicJSON's second pass finds every key present",
			opts: Options{Providers: []string{DynamicJSON, DynamicJSON}, DynamicVendor: dyn("a", `1`)},
			v1:   "", v2: `{"a": 1}`,
			warns: []string{"Removing duplicate metadata key: a"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = fixedNow
			m, err := Build(minimalView(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			r, err := m.Lookup("/openstack/latest/vendor_data.json")
			if tc.v1 == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("vendor_data.json: %q, %v; want ErrNotFound", r.Body, err)
				}
			} else if err != nil || string(r.Body) != tc.v1 {
				t.Errorf("vendor_data.json = %q, %v; want %q", r.Body, err, tc.v1)
			}
			r, err = m.Lookup("/openstack/latest/vendor_data2.json")
			if err != nil || string(r.Body) != tc.v2 || r.ContentType != ApplicationJSON {
				t.Errorf("vendor_data2.json = %q (%s), %v; want %q", r.Body, r.ContentType, err, tc.v2)
			}
			if !slices.Equal(m.Warnings(), tc.warns) {
				t.Errorf("warnings %q, want %q", m.Warnings(), tc.warns)
			}
		})
	}
}

func TestRootListing(t *testing.T) {
	r := RootListing(fixedNow)
	want := strings.Join(append(EC2Versions(), "latest"), "\n")
	if string(r.Body) != want || r.ContentType != TextPlain {
		t.Errorf("RootListing = %q (%s)", r.Body, r.ContentType)
	}
	m := mustBuild(t)
	got, err := m.Lookup("/")
	if err != nil || !bytes.Equal(got.Body, r.Body) {
		t.Errorf("Lookup(/) = %q, %v; want the root listing", got.Body, err)
	}
}

func TestBuildRejectsMissingID(t *testing.T) {
	v := minimalView()
	v.Instance.ID = ""
	if _, err := Build(v, minimalOptions()); err == nil {
		t.Error("Build accepted an instance without an id")
	}
}

func TestLocalIPv4(t *testing.T) {
	// first fixed IPv4 of the first port wins
	m := mustBuild(t)
	if r, _ := m.Lookup("/latest/meta-data/local-ipv4"); string(r.Body) != "10.90.1.10" {
		t.Errorf("local-ipv4 = %q", r.Body)
	}
	// an IPv6-only instance falls back to the request address
	v := fullView()
	v.Ports = v.Ports[:1]
	v.Ports[0].Port.FixedIPs = v.Ports[0].Port.FixedIPs[2:]
	o := fullOptions()
	o.RemoteAddr = "10.90.7.7"
	m2, err := Build(v, o)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := m2.Lookup("/latest/meta-data/local-ipv4"); string(r.Body) != "10.90.7.7" {
		t.Errorf("IPv6-only local-ipv4 = %q, want the remote address", r.Body)
	}
}

// TestVendorData2PerRequest: built for the API, vendor_data2.json is left
// to each request (nova's _vendor_data2 asks the DynamicJSON targets every
// time), with the same order rules; a config drive cannot be built so.
func TestVendorData2PerRequest(t *testing.T) {
	o := Options{Now: fixedNow, Providers: []string{StaticJSON, DynamicJSON}, StaticVendor: json.RawMessage(`{"s": 1}`),
		DynamicPerRequest: true}
	m, err := Build(minimalView(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lookup("/openstack/latest/vendor_data2.json"); !errors.Is(err, ErrVendorData2) {
		t.Fatalf("Lookup = %v, want ErrVendorData2", err)
	}
	if _, err := m.Lookup("/openstack/2016-06-30/vendor_data2.json"); !errors.Is(err, ErrNotFound) {
		t.Errorf("before 2016-10-06: %v, want ErrNotFound", err)
	}
	r, warns := m.VendorData2([]VendorAnswer{{"b", json.RawMessage(`2`)}, {"static", json.RawMessage(`3`)}})
	if string(r.Body) != `{"static": {"s": 1}, "b": 2}` || r.ContentType != ApplicationJSON ||
		!slices.Equal(warns, []string{"Removing duplicate metadata key: static"}) {
		t.Errorf("VendorData2 = %s (%s), %q", r.Body, r.ContentType, warns)
	}
	if r, err := m.Lookup("/openstack/latest/vendor_data.json"); err != nil || string(r.Body) != `{"s": 1}` {
		t.Errorf("vendor_data.json = %q, %v", r.Body, err)
	}
	o.ForConfigDrive = true
	if _, err := Build(minimalView(), o); err == nil {
		t.Error("a config drive built with DynamicPerRequest")
	}
}
