package metadata

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// Expected values below were produced by CPython 3's posixpath.normpath and
// json.dumps(json.loads(x)).

func TestPyNormpath(t *testing.T) {
	cases := map[string]string{
		"":             ".",
		"/":            "/",
		"//":           "//",
		"///":          "/",
		"/a/b/":        "/a/b",
		"a/../..":      "..",
		"../a":         "../a",
		"/../a":        "/a",
		"//a//b":       "//a/b",
		"///a":         "/a",
		"/a/./b/../c":  "/a/c",
		"a//b/.":       "a/b",
		".":            ".",
		"..":           "..",
		"/a/..":        "/",
		"//..":         "//",
		"a/b/../../..": "..",
	}
	for in, want := range cases {
		if got := pyNormpath(in); got != want {
			t.Errorf("pyNormpath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPyNumber(t *testing.T) {
	cases := map[string]string{
		"1e16":                    "1e+16",
		"1e15":                    "1000000000000000.0",
		"1.5e-7":                  "1.5e-07",
		"0.0001":                  "0.0001",
		"0.00001":                 "1e-05",
		"-0.0":                    "-0.0",
		"1E2":                     "100.0",
		"123.456e10":              "1234560000000.0",
		"5e-324":                  "5e-324",
		"1.7976931348623157e308":  "1.7976931348623157e+308",
		"1e400":                   "Infinity",
		"-1e400":                  "-Infinity",
		"0.1":                     "0.1",
		"100":                     "100",
		"-0":                      "0",
		"12345678901234567890123": "12345678901234567890123",
		"3.0":                     "3.0",
		"2.5E+3":                  "2500.0",
	}
	for in, want := range cases {
		if got := pyNumber(in); got != want {
			t.Errorf("pyNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPyDumps(t *testing.T) {
	cases := []struct {
		name string
		in   any
		want string
	}{
		{"empty object", obj{}, `{}`},
		{"empty list", []any{}, `[]`},
		{"order kept", obj{{"b", 1}, {"a", nil}, {"c", true}}, `{"b": 1, "a": null, "c": true}`},
		{"nested", obj{{"a", []any{1, obj{}, []string{"x"}}}}, `{"a": [1, {}, ["x"]]}`},
		{
			"escapes",
			"é\u2028\x7f/<>&\x01\t\"\\\b\f\r\n😀",
			`"\u00e9\u2028\u007f/<>&\u0001\t\"\\\b\f\r\n\ud83d\ude00"`,
		},
		{"invalid utf-8", "a\xffb", `"a\ufffdb"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(pyDumps(tc.in)); got != tc.want {
				t.Errorf("pyDumps = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParsePyDuplicateKeys(t *testing.T) {
	// Python keeps a repeated key at its first place with its last value.
	v, err := parsePy([]byte(`{"a":1,"b":2,"a":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(pyDumps(v)); got != `{"a": 3, "b": 2}` {
		t.Errorf("got %s", got)
	}
	for _, bad := range []string{`{`, `{"a":1} x`, `[1,]`, ``} {
		if _, err := parsePy([]byte(bad)); err == nil {
			t.Errorf("parsePy(%q) accepted invalid JSON", bad)
		}
	}
}

// TestMatchesPython re-dumps every JSON document with CPython's json module
// (the library nova's jsonutils wraps): an exact match shows key order,
// separators and escapes are nova's. Skipped where python3 is missing.
func TestMatchesPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	o := fullOptions()
	o.ForConfigDrive = true
	m, err := Build(fullView(), o)
	if err != nil {
		t.Fatal(err)
	}
	// One python run for all documents (NUL never occurs in them).
	var docs []File
	for _, f := range m.ConfigDriveFiles() {
		if strings.HasSuffix(f.Path, ".json") {
			docs = append(docs, f)
		}
	}
	var in bytes.Buffer
	for i, f := range docs {
		if i > 0 {
			in.WriteByte(0)
		}
		in.Write(f.Data)
	}
	script := `import json,sys
docs = sys.stdin.buffer.read().split(b"\0")
sys.stdout.buffer.write(b"\0".join(json.dumps(json.loads(d)).encode() for d in docs))`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	got := bytes.Split(out, []byte{0})
	if len(got) != len(docs) {
		t.Fatalf("python returned %d documents, want %d", len(got), len(docs))
	}
	for i, f := range docs {
		if !bytes.Equal(got[i], f.Data) {
			t.Errorf("%s differs from Python's encoding\n go: %s\n py: %s", f.Path, f.Data, got[i])
		}
	}
}
