package diag

import (
	"context"
	"fmt"
	"maps"
	"net/http"

	"github.com/mdctl/mdctl/server/metadata"
)

// traceTokenTTL is the lifetime of the session tokens a trace asks for.
const traceTokenTTL = "60"

// withToken is what an IMDSv2 client does when metadata_tokens is
// required: PUT the token path with hdr (the hop's own identity headers)
// and send the token on; without required it returns hdr as it is. The
// error names the PUT's answer, for the hop that needed the token.
func (t *target) withToken(ctx context.Context, c *http.Client, base string, hdr map[string]string) (map[string]string, error) {
	return t.withTokenAt(ctx, c, base+metadata.TokenPath, hdr)
}

// withTokenAt is withToken with the token PUT sent to tokenURL.
func (t *target) withTokenAt(ctx context.Context, c *http.Client, tokenURL string, hdr map[string]string) (map[string]string, error) {
	if !t.cfg.TokensRequired(t.view.Instance) {
		return hdr, nil
	}
	put := maps.Clone(hdr)
	put[metadata.TokenTTLHeader] = traceTokenTTL
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, tokenURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range put {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metadata_tokens is required; PUT %s: %w", metadata.TokenPath, err)
	}
	defer resp.Body.Close()
	a, err := readAnswer(resp)
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("metadata_tokens is required; PUT %s answered %d: %s", metadata.TokenPath, a.status, firstLine(a.body))
	}
	out := maps.Clone(hdr)
	out[metadata.TokenHeader] = a.body
	return out, nil
}
