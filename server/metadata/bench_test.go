package metadata

import "testing"

func BenchmarkBuild(b *testing.B) {
	v, o := fullView(), fullOptions()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(v, o); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkLookup(b *testing.B, path string) {
	o := fullOptions()
	o.Rand = nil // crypto/rand, as in production
	m, err := Build(fullView(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Lookup(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookupMetaDataJSON(b *testing.B) {
	benchmarkLookup(b, "/openstack/latest/meta_data.json")
}

func BenchmarkLookupInstanceID(b *testing.B) {
	benchmarkLookup(b, "/latest/meta-data/instance-id")
}
