package store

import (
	"strings"
	"testing"
)

// TestNormalizeSetting: oslo's boolean spellings, hosts, ports and the
// nearest key for a typo, as config set, --set and apply's settings see them.
func TestNormalizeSetting(t *testing.T) {
	tests := []struct {
		key, value, want, err string
	}{
		{"force_metadata", "yes", "true", ""},
		{"force_metadata", "On", "true", ""},
		{"force_metadata", "1", "true", ""},
		{"force_metadata", "TRUE", "true", ""},
		{"force_metadata", "no", "false", ""},
		{"force_metadata", "off", "false", ""},
		{"force_metadata", "0", "false", ""},
		{"force_metadata", "perhaps", "", `force_metadata: "perhaps" is not a boolean; allowed: true/false, yes/no, on/off, 1/0`},
		{"force_metadata", "t", "", "is not a boolean"}, // strconv's, not oslo's
		{"nova_metadata_port", "8775", "8775", ""},
		{"nova_metadata_port", "65535", "65535", ""},
		{"nova_metadata_port", "65536", "", "nova_metadata_port: 65536 is more than 65535"},
		{"nova_metadata_port", "0", "", `nova_metadata_port: "0" is not an integer ≥ 1`},
		{"nova_metadata_port", "-1", "", `nova_metadata_port: "-1" is not an integer ≥ 1`},
		{"nova_metadata_host", "10.0.0.5", "10.0.0.5", ""},
		{"nova_metadata_host", "fd00::5", "fd00::5", ""},
		{"nova_metadata_host", "metadata.example.org", "metadata.example.org", ""},
		{"nova_metadata_host", " api-1 ", "api-1", ""},
		{"nova_metadata_host", "10.0.0.300", "", "is neither an IP address nor a host name"},
		{"nova_metadata_host", "http://10.0.0.5", "", "is neither an IP address nor a host name"},
		{"nova_metadata_host", "bad_host", "", "is neither an IP address nor a host name"},
		{"nova_metadata_host", "", "", "is neither an IP address nor a host name"},
		{"nova_metadata_host", "10.0.0.5, fd00::5 ,api-2.example.org", "10.0.0.5,fd00::5,api-2.example.org", ""},
		{"nova_metadata_host", "10.0.0.5,,10.0.0.6,", "10.0.0.5,10.0.0.6", ""},
		{"nova_metadata_host", " , ", "", "is neither an IP address nor a host name"},
		{"nova_metadata_host", "10.0.0.5,10.0.0.300", "", `nova_metadata_host: "10.0.0.300" is neither an IP address nor a host name`},
		{"nova_metadata_host", "10.0.0.5,[fd00::5]", "", `nova_metadata_host: "[fd00::5]" is neither`},
		{"nova_metadata_host", "10.0.0.5 10.0.0.6", "", "is neither an IP address nor a host name"},
		{"nova_metadata_host", "api-1,api-2,api-1", "", `nova_metadata_host: "api-1" is listed twice`},
		{"force_metdata", "true", "", `unknown setting "force_metdata"; did you mean force_metadata?`},
		{"metadata_rate_limiting.base_query_ratelimit", "5", "", "did you mean metadata_rate_limiting.base_query_rate_limit?"},
		{"zzz", "1", "", `unknown setting "zzz"; known settings: agent_down_time, config_drive_format, `},
	}
	for _, tt := range tests {
		got, err := NormalizeSetting(tt.key, tt.value)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%s=%q: %q, %v; want %q", tt.key, tt.value, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s=%q: %q, %v; want error %q", tt.key, tt.value, got, err, tt.err)
		}
	}
}

// Config holds nova_metadata_host's replicas as a list, in the order given.
func TestConfigMetadataHosts(t *testing.T) {
	if got := DefaultConfig().NovaMetadataHosts; len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("default hosts %q", got)
	}
	c, err := ParseConfig(map[string]string{"nova_metadata_host": "10.0.0.6, fd00::6"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.NovaMetadataHosts, "|"); got != "10.0.0.6|fd00::6" {
		t.Fatalf("hosts %q", got)
	}
}
