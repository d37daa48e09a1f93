package metadata

import "strings"

// AWS IMDSv2's session tokens, as the EC2 instance metadata service has
// them (beyond OpenStack): a guest PUTs TokenPath with TokenTTLHeader and
// sends the token it gets back in TokenHeader. The API mints and checks
// them; the proxy refuses a token PUT that carries X-Forwarded-For and
// sends the answer with the hop limit.
const (
	// TokenPath is where a token is asked for, with PUT only.
	TokenPath = "/latest/api/token"
	// TokenTTLHeader carries the wanted lifetime in seconds on the PUT,
	// and the granted one on its answer.
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	// TokenHeader carries the token on a metadata request.
	TokenHeader = "X-Aws-Ec2-Metadata-Token"
	// TokenMaxTTL is AWS's limit: 6 hours.
	TokenMaxTTL = 21600
)

// IsTokenPath says whether p names TokenPath once normalised as nova
// normalises paths (so /latest//api/token/ does too); a cheap suffix test
// first keeps it off every other request's way.
func IsTokenPath(p string) bool {
	return strings.HasSuffix(strings.TrimRight(p, "/"), "token") && pyNormpath(p) == TokenPath
}
