package termtest

import "testing"

func TestColourCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", ""},
		{"\x1b[1mbold\x1b[m \x1b[1;7mreversed\x1b[0m", ""},
		{"\x1b[1;91mred\x1b[m", "\x1b[1;91m"},
		{"\x1b[7m\x1b[38;5;212mpink", "\x1b[38;5;212m"},
		{"\x1b[48:2::1:2:3mtrue", "\x1b[48:2::1:2:3m"},
		{"\x1b[2Jclear \x1b[32mgreen", "\x1b[32m"},
	}
	for _, tt := range tests {
		if got := ColourCode(tt.in); got != tt.want {
			t.Errorf("ColourCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
