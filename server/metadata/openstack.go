package metadata

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/mdctl/mdctl/store"
)

// OpenStack metadata versions, named as nova names them.
const (
	folsom    = "2012-08-10"
	grizzly   = "2013-04-04" // random_seed, password
	havana    = "2013-10-17" // vendor_data.json
	liberty   = "2015-10-15" // project_id, network_data.json
	newtonOne = "2016-06-30" // devices
	newtonTwo = "2016-10-06" // vendor_data2.json
	ocata     = "2017-02-22" // devices: vlan
	rocky     = "2018-08-27" // devices: vf_trusted
	victoria  = "2020-10-14" // dedicated_cpus
	epoxy     = "2025-04-04" // devices: share
)

var openstackVersions = []string{
	folsom, grizzly, havana, liberty, newtonOne, newtonTwo, ocata, rocky, victoria, epoxy,
}

// OpenStackVersions returns nova's OpenStack metadata versions, oldest
// first (without "latest").
func OpenStackVersions() []string { return slices.Clone(openstackVersions) }

// osSince reports whether version (a member of openstackVersions) is at
// least required.
func osSince(required, version string) bool {
	return slices.Index(openstackVersions, version) >= slices.Index(openstackVersions, required)
}

// seedMarker stands where each answer's random_seed goes. It holds NUL
// bytes, which the encoder escapes in every real string, so it cannot
// collide with instance data.
const seedMarker = "\x00random_seed\x00"

// metaDataJSON is nova's _metadata_as_json for one version, keys in nova's
// insertion order; random_seed holds seedMarker.
func metaDataJSON(v store.InstanceView, o Options, version string) obj {
	inst := v.Instance
	md := obj{{"uuid", inst.ID}}
	if len(inst.Meta) > 0 {
		// nova's dict of the instance_metadata rows, in row order, dumped
		// without sort_keys (base.py _metadata_as_json).
		meta := make(obj, len(inst.Meta))
		for i, it := range inst.Meta {
			meta[i] = member{it.Key, it.Value}
		}
		md = append(md, member{"meta", meta})
	}
	if len(o.Files) > 0 {
		files := make([]any, len(o.Files))
		for i, f := range o.Files {
			files[i] = obj{{"path", f.Path}, {"content_path", "/content/" + contentKey(i)}}
		}
		md = append(md, member{"files", files})
	}
	// extra_md: the libvirt driver passes admin_pass for config drives only.
	if o.ForConfigDrive && inst.AdminPass != "" {
		md = append(md, member{"admin_pass", inst.AdminPass})
	}
	if len(inst.Keys) > 0 {
		// Nova instances carry one key pair; mdctl allows several and lists
		// them all, in order, so cloud-init installs every one.
		pub := obj{}
		keys := make([]any, 0, len(inst.Keys))
		for _, k := range inst.Keys {
			pub.set(k.Name, k.Data)
			keys = append(keys, obj{{"name", k.Name}, {"type", k.Type}, {"data", k.Data}})
		}
		md = append(md, member{"public_keys", pub}, member{"keys", keys})
	}
	md = append(md,
		member{"hostname", hostname(inst, o)},
		member{"name", inst.Name},
		member{"launch_index", inst.LaunchIndex},
		member{"availability_zone", inst.AvailabilityZone},
	)
	if osSince(grizzly, version) {
		md = append(md, member{"random_seed", rawJSON(seedMarker)})
	}
	if osSince(liberty, version) {
		md = append(md, member{"project_id", inst.ProjectID})
	}
	if osSince(newtonOne, version) {
		// Only tagged devices are listed, and mdctl has no device tags.
		md = append(md, member{"devices", []any{}})
	}
	if osSince(victoria, version) {
		md = append(md, member{"dedicated_cpus", []any{}}) // no CPU pinning
	}
	return md
}

// seededDoc is a JSON document split around its random_seed value, so each
// answer costs one copy and 512 random bytes.
type seededDoc struct {
	prefix, suffix []byte // around the seed's quoted base64; suffix nil: no seed
}

func newSeededDoc(doc []byte) seededDoc {
	before, after, found := bytes.Cut(doc, []byte(seedMarker))
	if !found {
		return seededDoc{prefix: doc}
	}
	return seededDoc{prefix: before, suffix: after}
}

// versionListing is nova's _handle_version: what /openstack/<v> lists.
func versionListing(hasUserData bool, version string) []string {
	ret := []string{"meta_data.json"}
	if hasUserData {
		ret = append(ret, "user_data")
	}
	if osSince(grizzly, version) {
		ret = append(ret, "password")
	}
	if osSince(havana, version) {
		ret = append(ret, "vendor_data.json")
	}
	if osSince(liberty, version) {
		ret = append(ret, "network_data.json")
	}
	if osSince(newtonTwo, version) {
		ret = append(ret, "vendor_data2.json")
	}
	return ret
}

// vendorJSON is what the StaticJSON provider serves: the file re-dumped,
// or {} when there is none or it does not parse (nova logs and serves {}).
func vendorJSON(raw []byte) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return obj{}
	}
	v, err := parsePy(raw)
	if err != nil {
		return obj{}
	}
	return v
}

// vendorData2 is nova's _vendor_data2 (nova/api/metadata/base.py): for
// each of vendordata_providers in order, StaticJSON sets "static" (in the
// place it already has, if a target took the name first) and DynamicJSON
// adds its targets in order, dropping a name already present with nova's
// warning. It returns the document and those warnings.
func vendorData2(providers []string, static any, dynamic []VendorAnswer) (obj, []string) {
	j := obj{}
	var warnings []string
	for _, p := range providers {
		switch p {
		case StaticJSON:
			j.set("static", static)
		case DynamicJSON:
			for _, a := range dynamic {
				if _, dup := j.get(a.Name); dup {
					warnings = append(warnings, "Removing duplicate metadata key: "+a.Name)
					continue
				}
				j = append(j, member{a.Name, vendorJSON(a.Body)})
			}
		}
	}
	return j, warnings
}

func contentKey(i int) string { return fmt.Sprintf("%04d", i) }
