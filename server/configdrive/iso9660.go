package configdrive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/mdctl/mdctl/server/metadata"
)

// ISO 9660 (ECMA-119) with Rock Ridge (RRIP 1.10 over SUSP) in the primary
// hierarchy and a Joliet supplementary hierarchy, as genisoimage -J -r makes:
// Linux and osirrox read the Rock Ridge names (case and length kept), Windows
// guests (cloudbase-init) the Joliet ones. Both hierarchies share file extents.

const sector = 2048

// WriteISO9660 writes files as an iso9660 image labelled label to w,
// sequentially (w need not seek).
func WriteISO9660(w io.Writer, files []metadata.File, label string) error {
	return writeISO(w, files, label, time.Now().UTC())
}

func writeISO(w io.Writer, files []metadata.File, label string, now time.Time) error {
	if err := checkISOLabel(label); err != nil {
		return err
	}
	root, err := buildTree(files)
	if err != nil {
		return err
	}
	l := layoutISO(root)
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := l.write(bw, label, now); err != nil {
		return fmt.Errorf("configdrive: write iso9660: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("configdrive: write iso9660: %w", err)
	}
	return nil
}

func checkISOLabel(label string) error {
	if label == "" || len(label) > 32 {
		return fmt.Errorf("configdrive: iso9660 label %q must be 1 to 32 characters", label)
	}
	for _, r := range label {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("configdrive: iso9660 label %q: only letters, digits, '_', '-' and '.' are allowed", label)
		}
	}
	return nil
}

// isoDir is one directory of one hierarchy.
type isoDir struct {
	n       *node
	parent  *isoDir
	num     int // 1-based position in the path table
	ident   []byte
	entries []isoEntry // sorted by ident
	lba     uint32
	size    uint32 // bytes, a multiple of the sector
}

type isoEntry struct {
	n     *node
	ident []byte
	dir   *isoDir // nil for files
}

type isoHier struct {
	joliet bool
	dirs   []*isoDir // path-table order (breadth first, children sorted)
	ptSize uint32
	ptL    uint32 // sectors of the L and M path tables
	ptM    uint32
}

type isoLayout struct {
	primary, joliet *isoHier
	fileLBA         map[*node]uint32
	files           []*node // data order
	total           uint32  // sectors
}

func layoutISO(root *node) *isoLayout {
	l := &isoLayout{fileLBA: map[*node]uint32{}}
	l.primary = buildHier(root, false)
	l.joliet = buildHier(root, true)
	next := uint32(16 + 3) // system area, PVD, Joliet SVD, terminator
	for _, h := range []*isoHier{l.primary, l.joliet} {
		n := sectors(h.ptSize)
		h.ptL, h.ptM = next, next+n
		next += 2 * n
	}
	for _, h := range []*isoHier{l.primary, l.joliet} {
		for _, d := range h.dirs {
			d.lba = next
			next += d.size / sector
		}
	}
	collectFiles(root, &l.files)
	for _, f := range l.files {
		if len(f.data) == 0 {
			continue // empty files point at LBA 0, as libisofs does
		}
		l.fileLBA[f] = next
		next += sectors(uint32(len(f.data)))
	}
	l.total = next
	return l
}

func collectFiles(n *node, out *[]*node) {
	for _, c := range n.children {
		if c.dir {
			collectFiles(c, out)
		} else {
			*out = append(*out, c)
		}
	}
}

func sectors(n uint32) uint32 { return (n + sector - 1) / sector }

func buildHier(root *node, joliet bool) *isoHier {
	h := &isoHier{joliet: joliet}
	rd := &isoDir{n: root, ident: []byte{0}}
	rd.parent = rd
	queue := []*isoDir{rd}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		d.num = len(h.dirs) + 1
		h.dirs = append(h.dirs, d)
		d.entries = isoEntries(d.n, joliet)
		for i := range d.entries {
			e := &d.entries[i]
			if e.n.dir {
				e.dir = &isoDir{n: e.n, parent: d, ident: e.ident}
				queue = append(queue, e.dir)
			}
		}
	}
	// Records may not cross sectors: size each directory by packing.
	for _, d := range h.dirs {
		lens := []int{d.dotLen(joliet, true), d.dotLen(joliet, false)}
		for _, e := range d.entries {
			lens = append(lens, recordLen(e.ident, len(suEntry(e, joliet))))
		}
		d.size = packedSize(lens)
		h.ptSize += uint32(8 + len(d.ident) + len(d.ident)%2)
	}
	return h
}

func packedSize(lens []int) uint32 {
	used, secs := 0, 1
	for _, n := range lens {
		if used+n > sector {
			secs++
			used = 0
		}
		used += n
	}
	return uint32(secs * sector)
}

// isoEntries names a directory's children for one hierarchy, unique and
// sorted as ECMA-119 9.3 wants.
func isoEntries(n *node, joliet bool) []isoEntry {
	seen := map[string]bool{}
	var out []isoEntry
	for _, c := range n.children {
		var id []byte
		if joliet {
			id = jolietIdent(c, seen)
		} else {
			id = primaryIdent(c, seen)
		}
		out = append(out, isoEntry{n: c, ident: id})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].ident, out[j].ident) < 0 })
	return out
}

// primaryIdent makes the relaxed name genisoimage -l -allow-lowercase
// -allow-multidot -ldots makes: case kept, 31 characters, ";1" on files.
// Readers without Rock Ridge see it; everyone else reads the NM entry.
func primaryIdent(c *node, seen map[string]bool) []byte {
	var b strings.Builder
	for _, r := range c.name {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	base := b.String()
	if len(base) > 31 {
		base = base[:31]
	}
	name := base
	for i := 1; seen[strings.ToUpper(name)]; i++ {
		suffix := fmt.Sprintf("~%d", i)
		name = base[:min(len(base), 31-len(suffix))] + suffix
	}
	seen[strings.ToUpper(name)] = true
	if !c.dir {
		if !strings.Contains(name, ".") {
			name += "." // ECMA-119 7.5.1: a file identifier always has its separator
		}
		name += ";1"
	}
	return []byte(name)
}

func jolietIdent(c *node, seen map[string]bool) []byte {
	name := c.name // checkName kept it to 64 BMP characters
	seen[name] = true
	if !c.dir {
		name += ";1"
	}
	return ucs2(name)
}

func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func recordLen(ident []byte, su int) int {
	n := 33 + len(ident)
	if len(ident)%2 == 0 {
		n++
	}
	n += su
	return n + n%2
}

func (d *isoDir) dotLen(joliet, self bool) int {
	return recordLen([]byte{0}, len(d.dotSU(joliet, self)))
}

// Rock Ridge System Use entries (SUSP 1.10, RRIP 1.10).

const (
	rrDescription = "ROCK RIDGE INTERCHANGE PROTOCOL"
	rrSource      = "SEE RRIP 1.10 (IEEE P1282)"
)

func suPX(dir bool, nlink uint32) []byte {
	mode := uint32(0o100444) // genisoimage -r: files r--r--r--, root:root
	if dir {
		mode = 0o040555
	}
	b := []byte{'P', 'X', 36, 1}
	b = appendBoth32(b, mode)
	b = appendBoth32(b, nlink)
	b = appendBoth32(b, 0)
	b = appendBoth32(b, 0)
	return b
}

func suNM(name string) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, 0}, name...)
}

func suSP() []byte { return []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0} }

func suER() []byte {
	id := "RRIP_1991A"
	b := []byte{'E', 'R', byte(8 + len(id) + len(rrDescription) + len(rrSource)), 1,
		byte(len(id)), byte(len(rrDescription)), byte(len(rrSource)), 1}
	return append(append(append(b, id...), rrDescription...), rrSource...)
}

func dirLinks(n *node) uint32 {
	links := uint32(2)
	for _, c := range n.children {
		if c.dir {
			links++
		}
	}
	return links
}

func suEntry(e isoEntry, joliet bool) []byte {
	if joliet {
		return nil
	}
	if e.n.dir {
		return append(suPX(true, dirLinks(e.n)), suNM(e.n.name)...)
	}
	return append(suPX(false, 1), suNM(e.n.name)...)
}

func (d *isoDir) dotSU(joliet, self bool) []byte {
	if joliet {
		return nil
	}
	target := d
	if !self {
		target = d.parent
	}
	px := suPX(true, dirLinks(target.n))
	if self && d.parent == d { // the root's "." carries the SUSP and RRIP markers
		return append(append(suSP(), px...), suER()...)
	}
	return px
}

// Writing.

func (l *isoLayout) write(w io.Writer, label string, now time.Time) error {
	var err error
	put := func(b []byte) {
		if err == nil {
			_, err = w.Write(b)
		}
	}
	put(make([]byte, 16*sector))
	put(l.volumeDescriptor(l.primary, label, now))
	put(l.volumeDescriptor(l.joliet, label, now))
	term := make([]byte, sector)
	copy(term, "\xffCD001\x01")
	put(term)
	for _, h := range []*isoHier{l.primary, l.joliet} {
		put(padSector(h.pathTable(binary.LittleEndian)))
		put(padSector(h.pathTable(binary.BigEndian)))
	}
	for _, h := range []*isoHier{l.primary, l.joliet} {
		for _, d := range h.dirs {
			put(l.dirExtent(h, d, now))
		}
	}
	for _, f := range l.files {
		if len(f.data) > 0 {
			put(f.data)
			put(make([]byte, int(sectors(uint32(len(f.data))))*sector-len(f.data)))
		}
	}
	return err
}

func padSector(b []byte) []byte {
	return append(b, make([]byte, int(sectors(uint32(len(b))))*sector-len(b))...)
}

func (l *isoLayout) volumeDescriptor(h *isoHier, label string, now time.Time) []byte {
	b := make([]byte, sector)
	text := func(off, n int, s string) { // a- and d-characters, padded with spaces
		copy(b[off:off+n], fmt.Sprintf("%-*s", n, s))
	}
	if h.joliet {
		b[0] = 2
		text = func(off, n int, s string) {
			u := ucs2(fmt.Sprintf("%-*s", n/2, s))
			copy(b[off:off+n], u)
			if n%2 == 1 {
				b[off+n-1] = ' ' // 37-byte file-id fields: last byte pads with space
			}
		}
		copy(b[88:], "%/E") // UCS-2 level 3
	} else {
		b[0] = 1
	}
	copy(b[1:], "CD001")
	b[6] = 1
	text(8, 32, "LINUX")
	text(40, 32, label)
	putBoth32(b[80:], l.total)
	putBoth16(b[120:], 1)
	putBoth16(b[124:], 1)
	putBoth16(b[128:], sector)
	putBoth32(b[132:], h.ptSize)
	binary.LittleEndian.PutUint32(b[140:], h.ptL)
	binary.BigEndian.PutUint32(b[148:], h.ptM)
	root := h.dirs[0]
	copy(b[156:190], dirRecord([]byte{0}, root.lba, root.size, true, now, nil))
	text(190, 128, "")
	text(318, 128, "MDCTL")
	text(446, 128, "")
	text(574, 128, "MDCTL CONFIG DRIVE")
	text(702, 37, "")
	text(739, 37, "")
	text(776, 37, "")
	stamp := now.Format("20060102150405") + "00\x00"
	copy(b[813:], stamp)
	copy(b[830:], stamp)
	copy(b[847:], "0000000000000000\x00")
	copy(b[864:], stamp)
	b[881] = 1
	return b
}

func (h *isoHier) pathTable(order binary.ByteOrder) []byte {
	var b []byte
	for _, d := range h.dirs {
		rec := make([]byte, 8, 8+len(d.ident)+1)
		rec[0] = byte(len(d.ident))
		order.PutUint32(rec[2:], d.lba)
		order.PutUint16(rec[6:], uint16(d.parent.num))
		rec = append(rec, d.ident...)
		if len(d.ident)%2 == 1 {
			rec = append(rec, 0)
		}
		b = append(b, rec...)
	}
	return b
}

func (l *isoLayout) dirExtent(h *isoHier, d *isoDir, now time.Time) []byte {
	out := make([]byte, 0, d.size)
	cur := make([]byte, 0, sector)
	add := func(rec []byte) {
		if len(cur)+len(rec) > sector {
			out = append(out, cur...)
			out = append(out, make([]byte, sector-len(cur))...)
			cur = cur[:0]
		}
		cur = append(cur, rec...)
	}
	add(dirRecord([]byte{0}, d.lba, d.size, true, now, d.dotSU(h.joliet, true)))
	add(dirRecord([]byte{1}, d.parent.lba, d.parent.size, true, now, d.dotSU(h.joliet, false)))
	for _, e := range d.entries {
		su := suEntry(e, h.joliet)
		if e.dir != nil {
			add(dirRecord(e.ident, e.dir.lba, e.dir.size, true, now, su))
		} else {
			add(dirRecord(e.ident, l.fileLBA[e.n], uint32(len(e.n.data)), false, now, su))
		}
	}
	out = append(out, cur...)
	return append(out, make([]byte, int(d.size)-len(out))...)
}

func dirRecord(ident []byte, lba, size uint32, dir bool, t time.Time, su []byte) []byte {
	n := recordLen(ident, len(su))
	b := make([]byte, 33, n)
	b[0] = byte(n)
	putBoth32(b[2:], lba)
	putBoth32(b[10:], size)
	b[18] = byte(t.Year() - 1900)
	b[19], b[20], b[21], b[22], b[23] = byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	if dir {
		b[25] = 2
	}
	putBoth16(b[28:], 1)
	b[32] = byte(len(ident))
	b = append(b, ident...)
	if len(ident)%2 == 0 {
		b = append(b, 0)
	}
	b = append(b, su...)
	return append(b, make([]byte, n-len(b))...)
}

func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func appendBoth32(b []byte, v uint32) []byte {
	var x [8]byte
	putBoth32(x[:], v)
	return append(b, x[:]...)
}
