package events

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 18, 30, 0, 123456789, time.UTC)
	tests := []Event{
		{},
		{Time: t0, RequestID: "req-1", Hop: HopProxy, Method: "GET", Path: "/openstack/latest/meta_data.json", Status: 200, Bytes: 1500, Duration: 1234567},
		{Time: t0.In(time.FixedZone("x", 3600)), RequestID: "r", Hop: HopAPI, Namespace: "qrouter-1", Mode: ModeRouter, SourceIP: "10.90.1.5",
			InstanceID: "id", InstanceName: "vm <1> & \"two\"", ProjectID: "p", Method: "POST", Path: "/a\\b\n\r\t\x01\x7f", Status: 503, Bytes: -1, Duration: -5, Error: "boom\u2028\u2029"},
		{Path: "bad utf8 \xff\xfe and é and 😀", InstanceName: "\x00"},
	}
	for _, e := range tests {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("req-1", "/openstack", "vm1", "", int64(200))
	f.Add("\xff", "<&>", "\u2028", "\x00\x1f", int64(-1))
	f.Fuzz(func(t *testing.T, rid, path, name, errText string, n int64) {
		e := Event{Time: time.Unix(0, n).UTC(), RequestID: rid, Path: path, InstanceName: name, Error: errText, Bytes: n, Status: int(n % 1000)}
		want, err := json.Marshal(e)
		if err != nil {
			t.Skip() // times encoding/json cannot encode
		}
		if got := e.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	e := Event{Time: time.Now(), RequestID: "req-8a3c", Hop: HopAPI, Namespace: "qrouter-x", Mode: ModeRouter, SourceIP: "10.90.1.5",
		InstanceID: "9a8af368-90e8-4add-922c-dcbad7c1915b", InstanceName: "vm1", ProjectID: "89b464f17bf915d706581ccf5c22b262",
		Method: "GET", Path: "/openstack/latest/meta_data.json", Status: 200, Bytes: 1500, Duration: 120000}
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = e.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(e)
		}
	})
}

// decodeCases are lines DecodeJSON must read as encoding/json does: what
// AppendJSON writes, and what it never writes.
var decodeCases = []string{
	`{}`,
	`{"time":"2026-11-23T18:30:00.123456789+01:00","request_id":"r","hop":"api","method":"GET","path":"/","status":200,"bytes":-1,"duration_ns":5}`,
	`{"hop":"agent","status":-0}`,
	`{"status":01}`,
	`{"status":1.5}`,
	`{"status":1e2}`,
	`{"bytes":99999999999999999999}`,
	`{"Hop":"api"}`,
	`{"hop":"a\u0041"}`,
	`{"hop": "api"}`,
	`{"hop":"api",}`,
	`{"hop":"api"}x`,
	`{"hop":"api"`,
	`{"time":""}`,
	`{"time":null}`,
	`{"time":"2026-11-23T18:30:00Z","time":"2026-11-24T18:30:00Z"}`,
	"{\"path\":\"\xff\"}",
	"{\"path\":\"\x01\"}",
	`{"other":1}`,
	`[]`,
	``,
}

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 18, 30, 0, 123456789, time.UTC)
	lines := slices.Clone(decodeCases)
	for _, e := range []Event{{}, {Time: t0, RequestID: "req-1", Hop: HopProxy, Namespace: "qrouter-1", Mode: ModeRouter, SourceIP: "10.0.0.5",
		InstanceID: "id", InstanceName: "vm <1>", ProjectID: "p", Method: "GET", Path: "/latest", Status: 404, Bytes: 12, Duration: 34, Error: "boom"}} {
		lines = append(lines, string(e.AppendJSON(nil)))
	}
	for _, line := range lines {
		checkDecode(t, []byte(line))
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkDecode)
}

func checkDecode(t *testing.T, line []byte) {
	got, gotErr := DecodeJSON(line)
	var want Event
	wantErr := json.Unmarshal(line, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: DecodeJSON error %v, encoding/json %v", line, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", line, got, want)
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	e := Event{Time: time.Now(), RequestID: "req-8a3c", Hop: HopAPI, SourceIP: "10.90.1.5",
		InstanceID: "9a8af368-90e8-4add-922c-dcbad7c1915b", InstanceName: "vm1", ProjectID: "89b464f17bf915d706581ccf5c22b262",
		Method: "GET", Path: "/openstack/latest/meta_data.json", Status: 200, Bytes: 1500, Duration: 120000}
	line := e.AppendJSON(nil)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			_, _ = DecodeJSON(line)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var e Event
			_ = json.Unmarshal(line, &e)
		}
	})
}
