package configdrive

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/mdctl/mdctl/server/metadata"
)

// FAT16 with VFAT long names, the filesystem mkfs.vfat makes on nova's 64 MiB
// config drive (FAT32 needs 65525 clusters, more than 64 MiB holds at 4 KiB).

const (
	vfatSize       = 64 << 20
	fatSectorSize  = 512
	fatSecPerClus  = 4 // 2 KiB clusters: 32695 of them, well inside FAT16's range
	fatClusterSize = fatSectorSize * fatSecPerClus
	fatReserved    = 4
	fatCount       = 2
	fatRootEntries = 512
	fatTotalSecs   = vfatSize / fatSectorSize
	fatRootSecs    = fatRootEntries * 32 / fatSectorSize
)

type fatGeom struct {
	fatSecs, dataStart, clusters uint32
}

// fatGeometry sizes the FAT so it covers every cluster the data area holds.
func fatGeometry() fatGeom {
	fatSecs := uint32(1)
	for {
		data := fatTotalSecs - fatReserved - fatCount*fatSecs - fatRootSecs
		clusters := data / fatSecPerClus
		if (clusters+2)*2 <= fatSecs*fatSectorSize {
			return fatGeom{fatSecs, fatReserved + fatCount*fatSecs + fatRootSecs, clusters}
		}
		fatSecs++
	}
}

// WriteVFAT writes files as a 64 MiB FAT16 image labelled label. Every
// region the filesystem uses is written in full, so w may hold old bytes;
// unused clusters are left alone (sparse when w is a fresh file). When w can
// Truncate (an *os.File), the image is sized with it.
func WriteVFAT(w io.WriterAt, files []metadata.File, label string) error {
	return writeVFAT(w, files, label, time.Now().UTC())
}

func writeVFAT(w io.WriterAt, files []metadata.File, label string, now time.Time) error {
	if err := checkFATLabel(label); err != nil {
		return err
	}
	root, err := buildTree(files)
	if err != nil {
		return err
	}
	v := &vfatWriter{g: fatGeometry(), now: now, label: label}
	v.fat = make([]uint16, v.g.clusters+2)
	v.fat[0], v.fat[1] = 0xFFF8, 0xFFFF
	v.next = 2
	if err := v.allocTree(root); err != nil {
		return err
	}
	if err := v.write(w, root); err != nil {
		return fmt.Errorf("configdrive: write vfat: %w", err)
	}
	return nil
}

func checkFATLabel(label string) error {
	if label == "" || len(label) > 11 {
		return fmt.Errorf("configdrive: vfat label %q must be 1 to 11 characters", label)
	}
	for _, r := range label {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("configdrive: vfat label %q: only letters, digits, '_' and '-' are allowed", label)
		}
	}
	return nil
}

type vfatWriter struct {
	g     fatGeom
	now   time.Time
	label string
	fat   []uint16
	next  uint32
	first map[*node]uint32 // first cluster of each file and directory
	dirs  map[*node][]byte // encoded directory tables
}

// alloc reserves a contiguous chain for n bytes; 0 for none.
func (v *vfatWriter) alloc(n int) (uint32, error) {
	if n == 0 {
		return 0, nil
	}
	count := uint32((n + fatClusterSize - 1) / fatClusterSize)
	if v.next+count > v.g.clusters+2 {
		return 0, fmt.Errorf("configdrive: the files do not fit in a %d MiB vfat drive", vfatSize>>20)
	}
	first := v.next
	for c := first; c < first+count; c++ {
		v.fat[c] = uint16(c + 1)
	}
	v.fat[first+count-1] = 0xFFFF
	v.next += count
	return first, nil
}

// allocTree gives every directory and file its clusters, directories first
// (their tables' size does not depend on cluster numbers), then encodes them.
func (v *vfatWriter) allocTree(root *node) error {
	v.first = map[*node]uint32{}
	v.dirs = map[*node][]byte{}
	var dirs []*node
	parent := map[*node]uint32{}
	var walk func(n *node) error
	walk = func(n *node) error {
		for _, c := range n.children {
			if !c.dir {
				continue
			}
			size := (2 + entriesLen(c)) * 32
			first, err := v.alloc(max(size, fatClusterSize))
			if err != nil {
				return err
			}
			v.first[c] = first
			parent[c] = v.first[n] // 0 for the root, as FAT wants in ".."
			dirs = append(dirs, c)
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return err
	}
	if entriesLen(root)+1 > fatRootEntries {
		return fmt.Errorf("configdrive: %d names in the vfat root, more than its %d entries", len(root.children), fatRootEntries-1)
	}
	var files []*node
	collectFiles(root, &files)
	for _, f := range files {
		first, err := v.alloc(len(f.data))
		if err != nil {
			return err
		}
		v.first[f] = first
	}
	v.dirs[root] = v.encodeDir(root, true, 0)
	for _, d := range dirs {
		v.dirs[d] = v.encodeDir(d, false, parent[d])
	}
	return nil
}

// entriesLen counts the 32-byte entries a directory's children take.
func entriesLen(n *node) int {
	total := 0
	for _, c := range n.children {
		total += 1 + lfnCount(c.name)
	}
	return total
}

func lfnCount(name string) int {
	if _, ok := plainShortName(name); ok {
		return 0
	}
	return (len(utf16.Encode([]rune(name))) + 12) / 13
}

// plainShortName is the 8.3 entry of a name that needs no long name.
func plainShortName(name string) ([11]byte, bool) {
	var s [11]byte
	base, ext, _ := strings.Cut(name, ".")
	if len(base) == 0 || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return s, false
	}
	for _, r := range base + ext {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-!#$%&'()@^`{}~", r)) {
			return s, false
		}
	}
	copy(s[:], fmt.Sprintf("%-8s%-3s", base, ext))
	return s, true
}

// shortAlias makes a unique BASE~N.EXT for a long name.
func shortAlias(name string, used map[[11]byte]bool) [11]byte {
	clean := func(s string, n int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if b.Len() == n {
				break
			}
			switch {
			case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ' || r == '.':
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	base, ext := name, ""
	if i := strings.LastIndex(name, "."); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	b, e := clean(base, 8), clean(ext, 3)
	for i := 1; ; i++ {
		tail := fmt.Sprintf("~%d", i)
		var s [11]byte
		copy(s[:], fmt.Sprintf("%-8s%-3s", b[:min(len(b), 8-len(tail))]+tail, e))
		if !used[s] {
			used[s] = true
			return s
		}
	}
}

func lfnChecksum(s [11]byte) byte {
	var sum byte
	for _, c := range s {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

func (v *vfatWriter) encodeDir(d *node, isRoot bool, parent uint32) []byte {
	var b []byte
	if isRoot {
		var label [11]byte
		copy(label[:], fmt.Sprintf("%-11s", v.label))
		b = append(b, v.shortEntry(label, 0x08, 0, 0)...)
	} else {
		dot := [11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
		dotdot := [11]byte{'.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
		b = append(b, v.shortEntry(dot, 0x10, v.first[d], 0)...)
		b = append(b, v.shortEntry(dotdot, 0x10, parent, 0)...)
	}
	used := map[[11]byte]bool{}
	for _, c := range d.children {
		if s, ok := plainShortName(c.name); ok {
			used[s] = true
		}
	}
	for _, c := range d.children {
		short, plain := plainShortName(c.name)
		if !plain {
			short = shortAlias(c.name, used)
			b = append(b, lfnEntries(c.name, lfnChecksum(short))...)
		}
		attr, size := byte(0x20), uint32(len(c.data))
		if c.dir {
			attr, size = 0x10, 0
		}
		b = append(b, v.shortEntry(short, attr, v.first[c], size)...)
	}
	return b
}

func (v *vfatWriter) shortEntry(name [11]byte, attr byte, cluster, size uint32) []byte {
	e := make([]byte, 32)
	copy(e, name[:])
	e[11] = attr
	date := uint16((v.now.Year()-1980)<<9 | int(v.now.Month())<<5 | v.now.Day())
	tm := uint16(v.now.Hour()<<11 | v.now.Minute()<<5 | v.now.Second()/2)
	if attr != 0x08 {
		binary.LittleEndian.PutUint16(e[14:], tm)
		binary.LittleEndian.PutUint16(e[16:], date)
		binary.LittleEndian.PutUint16(e[18:], date)
	}
	binary.LittleEndian.PutUint16(e[22:], tm)
	binary.LittleEndian.PutUint16(e[24:], date)
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

// lfnEntries are the long-name entries that precede a short entry, last
// part first (Microsoft's FAT specification, "Long Directory Entries").
func lfnEntries(name string, sum byte) []byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	padded := make([]uint16, n*13)
	for i := range padded {
		switch {
		case i < len(u):
			padded[i] = u[i]
		case i == len(u):
			padded[i] = 0
		default:
			padded[i] = 0xFFFF
		}
	}
	var out []byte
	for seq := n; seq >= 1; seq-- {
		e := make([]byte, 32)
		e[0] = byte(seq)
		if seq == n {
			e[0] |= 0x40
		}
		e[11], e[13] = 0x0F, sum
		part := padded[(seq-1)*13 : seq*13]
		offs := []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
		for i, off := range offs {
			binary.LittleEndian.PutUint16(e[off:], part[i])
		}
		out = append(out, e...)
	}
	return out
}

func (v *vfatWriter) write(w io.WriterAt, root *node) error {
	g := v.g
	boot := make([]byte, fatReserved*fatSectorSize)
	copy(boot, []byte{0xEB, 0x3C, 0x90})
	copy(boot[3:], "MDCTL   ")
	binary.LittleEndian.PutUint16(boot[11:], fatSectorSize)
	boot[13] = fatSecPerClus
	binary.LittleEndian.PutUint16(boot[14:], fatReserved)
	boot[16] = fatCount
	binary.LittleEndian.PutUint16(boot[17:], fatRootEntries)
	boot[21] = 0xF8
	binary.LittleEndian.PutUint16(boot[22:], uint16(g.fatSecs))
	binary.LittleEndian.PutUint16(boot[24:], 32)
	binary.LittleEndian.PutUint16(boot[26:], 64)
	binary.LittleEndian.PutUint32(boot[32:], fatTotalSecs)
	boot[36] = 0x80
	boot[38] = 0x29
	binary.LittleEndian.PutUint32(boot[39:], uint32(v.now.Unix()))
	copy(boot[43:54], fmt.Sprintf("%-11s", v.label))
	copy(boot[54:62], "FAT16   ")
	boot[510], boot[511] = 0x55, 0xAA
	if _, err := w.WriteAt(boot, 0); err != nil {
		return err
	}
	fat := make([]byte, g.fatSecs*fatSectorSize)
	for i, e := range v.fat {
		binary.LittleEndian.PutUint16(fat[2*i:], e)
	}
	for i := uint32(0); i < fatCount; i++ {
		if _, err := w.WriteAt(fat, int64(fatReserved+i*g.fatSecs)*fatSectorSize); err != nil {
			return err
		}
	}
	rootTable := make([]byte, fatRootSecs*fatSectorSize)
	copy(rootTable, v.dirs[root])
	if _, err := w.WriteAt(rootTable, int64(fatReserved+fatCount*g.fatSecs)*fatSectorSize); err != nil {
		return err
	}
	for n, first := range v.first {
		data := n.data
		if n.dir {
			data = v.dirs[n]
		}
		if first == 0 {
			continue
		}
		clusters := (max(len(data), 1) + fatClusterSize - 1) / fatClusterSize
		buf := make([]byte, clusters*fatClusterSize)
		copy(buf, data)
		if _, err := w.WriteAt(buf, v.clusterOffset(first)); err != nil {
			return err
		}
	}
	if t, ok := w.(interface{ Truncate(int64) error }); ok {
		return t.Truncate(vfatSize)
	}
	_, err := w.WriteAt([]byte{0}, vfatSize-1)
	return err
}

func (v *vfatWriter) clusterOffset(c uint32) int64 {
	return (int64(v.g.dataStart) + int64(c-2)*fatSecPerClus) * fatSectorSize
}
