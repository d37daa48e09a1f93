package store

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SettingKind says how a setting's value is checked.
type SettingKind int

// The kinds of setting values.
const (
	KindString SettingKind = iota
	KindBool
	KindInt  // an integer ≥ Min
	KindEnum // one of Allowed
	KindList // comma-separated strings
	KindHost // a host name or an IP address
	// KindHostList is comma-separated hosts (KindHost each), in order of
	// preference, none twice.
	KindHostList
)

// oslo.config's Boolean spellings, compared without case.
var (
	trueWords  = []string{"true", "1", "on", "yes"}
	falseWords = []string{"false", "0", "off", "no"}
)

// SettingDef describes one setting: its nova/neutron name, default and help.
type SettingDef struct {
	Key     string
	Default string
	Kind    SettingKind
	Allowed []string // for KindEnum
	Min     int      // for KindInt
	Max     int      // for KindInt; 0: no upper bound
	Secret  bool     // shown masked in listings
	Help    string
}

// settingDefs keeps nova's and neutron's option names; defaults are theirs
// except where mdctl's own chain makes another default the right one.
var settingDefs = []SettingDef{
	{Key: "force_metadata", Default: "false", Kind: KindBool, Help: "neutron dhcp: serve metadata from every network's DHCP namespace"},
	{Key: "enable_isolated_metadata", Default: "false", Kind: KindBool, Help: "neutron dhcp: serve metadata from the DHCP namespace of isolated networks"},
	{Key: "dhcp_lease_duration", Default: "86400", Kind: KindInt, Min: -1, Help: "neutron dhcp: seconds a DHCP lease lasts (-1: infinite)"},
	{Key: "dns_domain", Default: "openstacklocal", Kind: KindString, Help: "neutron dhcp: domain of the DHCP host names (host-10-0-0-5.<domain>) and DHCP option 15"},
	{Key: "enable_metadata_proxy", Default: "true", Kind: KindBool, Help: "neutron l3: run the metadata proxy in router namespaces"},
	{Key: "force_config_drive", Default: "false", Kind: KindBool, Help: "nova: build a config drive for every instance"},
	{Key: "config_drive_format", Default: "iso9660", Kind: KindEnum, Allowed: []string{"iso9660", "vfat"}, Help: "nova: config drive filesystem"},
	{Key: "metadata_proxy_shared_secret", Default: "", Kind: KindString, Secret: true, Help: "nova+neutron: HMAC key the agent signs instance ids with"},
	{Key: "metadata_cache_expiration", Default: "15", Kind: KindInt, Help: "nova: seconds a built metadata answer may be reused (0 disables)"},
	{Key: "service_metadata_proxy", Default: "true", Kind: KindBool, Help: "nova: trust signed X-Instance-ID headers from the agent (false: identify by peer address)"},
	{Key: "dhcp_domain", Default: "novalocal", Kind: KindString, Help: "nova: domain appended to hostnames"},
	{Key: "nova_metadata_host", Default: "127.0.0.1", Kind: KindHostList, Help: "neutron agent: where the metadata API listens (mdctl: a comma-separated list of replicas, IP addresses or names, all on nova_metadata_port; the agent uses the first that answers and moves to the next when one does not)"},
	{Key: "nova_metadata_port", Default: "8775", Kind: KindInt, Min: 1, Max: 65535, Help: "neutron agent: the metadata API's port"},
	{Key: "nova_metadata_protocol", Default: "http", Kind: KindEnum, Allowed: []string{"http", "https"}, Help: "neutron agent: the metadata API's scheme"},
	{Key: "vendordata_providers", Default: "StaticJSON", Kind: KindList, Allowed: []string{"StaticJSON", "DynamicJSON"}, Help: "nova: vendor data sources"},
	{Key: "vendordata_jsonfile_path", Default: "", Kind: KindString, Help: "nova: JSON file served as vendor_data.json"},
	{Key: "vendordata_dynamic_targets", Default: "", Kind: KindList, Help: "nova: name@url services POSTed for vendor_data2.json"},
	{Key: "vendordata_dynamic_connect_timeout", Default: "5", Kind: KindInt, Min: 3, Help: "nova: seconds to connect to a dynamic vendordata service"},
	{Key: "vendordata_dynamic_read_timeout", Default: "5", Kind: KindInt, Help: "nova: seconds to wait for a dynamic vendordata answer"},
	{Key: "vendordata_dynamic_failure_fatal", Default: "false", Kind: KindBool, Help: "nova: fail the request when a dynamic vendordata service fails"},
	{Key: "metadata_tokens", Default: "optional", Kind: KindEnum, Allowed: []string{"optional", "required"}, Help: "mdctl (AWS IMDSv2's HttpTokens): required refuses metadata requests without a session token (PUT /latest/api/token) with 401, on both trees; cloud-init's OpenStack datasource never sends one, so required suits EC2-datasource and SDK clients only"},
	{Key: "metadata_token_hop_limit", Default: "1", Kind: KindInt, Min: 1, Help: "mdctl (AWS's HttpPutResponseHopLimit): IP TTL / hop limit of the proxy's token answers; 1 keeps a token from a container NATed behind the guest"},
	{Key: "metadata_token_key", Default: "", Kind: KindString, Secret: true, Help: "mdctl: HMAC key session tokens are signed with; serve makes one on first start and keeps it with the settings, so every API of the deployment accepts the same tokens, across restarts"},
	{Key: "metadata_proxy_conns_per_source", Default: "32", Kind: KindInt, Help: "mdctl: open connections one guest address may hold at a proxy (0: no cap); past it new ones are closed at once, so one guest cannot fill the listener's 1024 (haproxy's maxconn) and starve its router's other guests"},
	{Key: "agent_down_time", Default: "75", Kind: KindInt, Min: 1, Help: "neutron: seconds after a node's last heartbeat that it counts as dead, and the scheduler moves its routers and DHCP networks to live nodes; serve heartbeats every third of it (at most 30 s)"},
	{Key: "dhcp_agents_per_network", Default: "1", Kind: KindInt, Min: 1, Help: "neutron: how many live nodes running the proxy component host each DHCP network (its dnsmasq)"},
	{Key: "metadata_rate_limiting.rate_limit_enabled", Default: "true", Kind: KindBool, Help: "neutron: per-source request limits in the proxies (429)"},
	{Key: "metadata_rate_limiting.ip_versions", Default: "4,6", Kind: KindList, Allowed: []string{"4", "6"}, Help: "neutron: the IP versions rate limits apply to (mdctl: both by default and either or both allowed, where neutron takes exactly one and defaults to 4, because a family left unlimited is a way around the limit)"},
	{Key: "metadata_rate_limiting.base_window_duration", Default: "10", Kind: KindInt, Min: 1, Help: "neutron: seconds of the base window"},
	{Key: "metadata_rate_limiting.base_query_rate_limit", Default: "1000", Kind: KindInt, Min: 1, Help: "neutron: requests per source in the base window (mdctl: far above a cloud-init boot)"},
	{Key: "metadata_rate_limiting.burst_window_duration", Default: "1", Kind: KindInt, Min: 1, Help: "neutron: seconds of the burst window"},
	{Key: "metadata_rate_limiting.burst_query_rate_limit", Default: "500", Kind: KindInt, Min: 1, Help: "neutron: requests per source in the burst window"},
}

// SettingDefs returns every known setting, sorted by key.
func SettingDefs() []SettingDef {
	out := slices.Clone(settingDefs)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// LookupSetting returns a setting's definition.
func LookupSetting(key string) (SettingDef, bool) {
	for _, d := range settingDefs {
		if d.Key == key {
			return d, true
		}
	}
	return SettingDef{}, false
}

// NormalizeSetting checks a value for key and returns its canonical form
// ("True" → "true"). The error names the allowed values.
func NormalizeSetting(key, value string) (string, error) {
	d, ok := LookupSetting(key)
	if !ok {
		return "", unknownSetting(key)
	}
	v := strings.TrimSpace(value)
	switch d.Kind {
	case KindBool:
		switch lv := strings.ToLower(v); {
		case slices.Contains(trueWords, lv):
			return "true", nil
		case slices.Contains(falseWords, lv):
			return "false", nil
		}
		return "", fmt.Errorf("%s: %q is not a boolean; allowed: true/false, yes/no, on/off, 1/0", key, value)
	case KindInt:
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < d.Min:
			return "", fmt.Errorf("%s: %q is not an integer ≥ %d", key, value, d.Min)
		case d.Max > 0 && n > d.Max:
			return "", fmt.Errorf("%s: %d is more than %d", key, n, d.Max)
		}
		return strconv.Itoa(n), nil
	case KindHost:
		if !validHost(v) {
			return "", fmt.Errorf("%s: %q is neither an IP address nor a host name", key, value)
		}
		return v, nil
	case KindHostList:
		return normalizeHostList(key, value, v)
	case KindEnum:
		for _, a := range d.Allowed {
			if strings.EqualFold(v, a) {
				return a, nil
			}
		}
		return "", fmt.Errorf("%s: %q is not allowed; allowed: %s", key, value, strings.Join(d.Allowed, ", "))
	case KindList:
		items := splitList(v)
		if len(d.Allowed) > 0 {
			for i, it := range items {
				j := slices.IndexFunc(d.Allowed, func(a string) bool { return strings.EqualFold(a, it) })
				if j < 0 {
					return "", fmt.Errorf("%s: %q is not allowed; allowed: %s", key, it, strings.Join(d.Allowed, ", "))
				}
				items[i] = d.Allowed[j]
			}
		}
		if key == "vendordata_dynamic_targets" {
			for _, it := range items {
				if name, url, ok := strings.Cut(it, "@"); !ok || name == "" || !strings.HasPrefix(url, "http") {
					return "", fmt.Errorf("%s: %q is not name@http(s)://url", key, it)
				}
			}
		}
		return strings.Join(items, ","), nil
	}
	return v, nil
}

// normalizeHostList checks each host of a comma-separated list and joins
// them with bare commas.
func normalizeHostList(key, value, v string) (string, error) {
	hosts := splitList(v)
	if len(hosts) == 0 {
		return "", fmt.Errorf("%s: %q is neither an IP address nor a host name", key, value)
	}
	for i, h := range hosts {
		if !validHost(h) {
			return "", fmt.Errorf("%s: %q is neither an IP address nor a host name", key, h)
		}
		if slices.Contains(hosts[:i], h) {
			return "", fmt.Errorf("%s: %q is listed twice", key, h)
		}
	}
	return strings.Join(hosts, ","), nil
}

// hostLabel is one label of an RFC 1123 host name.
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validHost(v string) bool {
	if _, err := netip.ParseAddr(v); err == nil {
		return true
	}
	if v == "" || len(v) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(v, "."), ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	// All digits and dots is a mistyped address, not a name.
	return strings.Trim(v, "0123456789.") != ""
}

// unknownSetting names the nearest known keys (a typo), else all of them.
func unknownSetting(key string) error {
	var near, all []string
	best := max(2, len(key)/5) // farther than this is no typo
	for _, d := range SettingDefs() {
		all = append(all, d.Key)
		switch dist := distance(key, d.Key); {
		case dist < best:
			best, near = dist, []string{d.Key}
		case dist == best:
			near = append(near, d.Key)
		}
	}
	if len(near) > 0 {
		return fmt.Errorf("unknown setting %q; did you mean %s?", key, strings.Join(near, " or "))
	}
	return fmt.Errorf("unknown setting %q; known settings: %s", key, strings.Join(all, ", "))
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func splitList(v string) []string {
	var out []string
	for _, it := range strings.Split(v, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// Config is the settings in force, typed: defaults overlaid with the stored
// values, overlaid with a process's own overrides.
type Config struct {
	ForceMetadata              bool
	EnableIsolatedMetadata     bool
	EnableMetadataProxy        bool
	ForceConfigDrive           bool
	ConfigDriveFormat          string
	SharedSecret               string
	CacheExpirationSeconds     int
	ServiceMetadataProxy       bool
	DHCPDomain                 string
	DHCPLeaseSeconds           int // -1: infinite
	DNSDomain                  string
	NovaMetadataHosts          []string // in order of preference
	NovaMetadataPort           int
	NovaMetadataProtocol       string
	VendordataProviders        []string
	VendordataJSONFile         string
	VendordataDynamicTargets   []string
	VendordataConnectTimeout   int
	VendordataReadTimeout      int
	VendordataFailureFatal     bool
	ProxyConnsPerSource        int
	MetadataTokensRequired     bool
	MetadataTokenHopLimit      int
	MetadataTokenKey           string
	RateLimitEnabled           bool
	RateLimitIPVersions        []string // "4", "6" or both
	RateLimitBaseWindowSeconds int
	RateLimitBaseQueries       int
	RateLimitBurstWindowSecs   int
	RateLimitBurstQueries      int
	AgentDownTime              time.Duration
	DHCPAgentsPerNetwork       int
}

// Resolve returns every setting's value in force: the default, unless set
// in stored, unless overridden. Unknown or invalid values are errors.
func Resolve(stored, overrides map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(settingDefs))
	for _, d := range settingDefs {
		out[d.Key] = d.Default
	}
	for _, layer := range []map[string]string{stored, overrides} {
		for k, v := range layer {
			nv, err := NormalizeSetting(k, v)
			if err != nil {
				return nil, err
			}
			out[k] = nv
		}
	}
	return out, nil
}

// CheckMetadataTokens checks an instance's metadata_tokens override: one
// of the setting's values, or "" to follow the setting.
func CheckMetadataTokens(v string) error {
	d, _ := LookupSetting("metadata_tokens")
	if v == "" || slices.Contains(d.Allowed, v) {
		return nil
	}
	return fmt.Errorf("metadata_tokens %q: use %s, or nothing to follow the setting", v, strings.Join(d.Allowed, " or "))
}

// TokensRequired says whether in's requests need a session token: its own
// metadata_tokens, else the setting.
func (c Config) TokensRequired(in Instance) bool {
	if in.MetadataTokens != "" {
		return in.MetadataTokens == "required"
	}
	return c.MetadataTokensRequired
}

// DefaultConfig is every setting at its default.
func DefaultConfig() Config {
	c, err := ParseConfig(nil, nil)
	if err != nil {
		panic(fmt.Sprintf("settings table: a default does not parse: %v", err)) // a bug in settingDefs
	}
	return c
}

// ParseConfig resolves settings into a typed Config.
func ParseConfig(stored, overrides map[string]string) (Config, error) {
	m, err := Resolve(stored, overrides)
	if err != nil {
		return Config{}, err
	}
	b := func(k string) bool { return m[k] == "true" }
	n := func(k string) int { v, _ := strconv.Atoi(m[k]); return v }
	return Config{
		ForceMetadata:              b("force_metadata"),
		EnableIsolatedMetadata:     b("enable_isolated_metadata"),
		EnableMetadataProxy:        b("enable_metadata_proxy"),
		ForceConfigDrive:           b("force_config_drive"),
		ConfigDriveFormat:          m["config_drive_format"],
		SharedSecret:               m["metadata_proxy_shared_secret"],
		CacheExpirationSeconds:     n("metadata_cache_expiration"),
		ServiceMetadataProxy:       b("service_metadata_proxy"),
		DHCPDomain:                 m["dhcp_domain"],
		DHCPLeaseSeconds:           n("dhcp_lease_duration"),
		DNSDomain:                  m["dns_domain"],
		NovaMetadataHosts:          splitList(m["nova_metadata_host"]),
		NovaMetadataPort:           n("nova_metadata_port"),
		NovaMetadataProtocol:       m["nova_metadata_protocol"],
		VendordataProviders:        splitList(m["vendordata_providers"]),
		VendordataJSONFile:         m["vendordata_jsonfile_path"],
		VendordataDynamicTargets:   splitList(m["vendordata_dynamic_targets"]),
		VendordataConnectTimeout:   n("vendordata_dynamic_connect_timeout"),
		VendordataReadTimeout:      n("vendordata_dynamic_read_timeout"),
		VendordataFailureFatal:     b("vendordata_dynamic_failure_fatal"),
		ProxyConnsPerSource:        n("metadata_proxy_conns_per_source"),
		MetadataTokensRequired:     m["metadata_tokens"] == "required",
		MetadataTokenHopLimit:      n("metadata_token_hop_limit"),
		MetadataTokenKey:           m["metadata_token_key"],
		RateLimitEnabled:           b("metadata_rate_limiting.rate_limit_enabled"),
		RateLimitIPVersions:        splitList(m["metadata_rate_limiting.ip_versions"]),
		RateLimitBaseWindowSeconds: n("metadata_rate_limiting.base_window_duration"),
		RateLimitBaseQueries:       n("metadata_rate_limiting.base_query_rate_limit"),
		RateLimitBurstWindowSecs:   n("metadata_rate_limiting.burst_window_duration"),
		RateLimitBurstQueries:      n("metadata_rate_limiting.burst_query_rate_limit"),
		AgentDownTime:              time.Duration(n("agent_down_time")) * time.Second,
		DHCPAgentsPerNetwork:       n("dhcp_agents_per_network"),
	}, nil
}
