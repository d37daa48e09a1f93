package configdrive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/mdctl/mdctl/server/metadata"
)

// Reading images back, in pure Go so Inspect works on any host (nova's
// compute nodes rarely have osirrox or mtools). The readers accept what
// genisoimage, xorriso and mkfs.vfat make too, not only this package's
// output, and they bound every loop: an image is untrusted input.

// Image is what a guest would see on a drive.
type Image struct {
	Format string          // FormatISO9660 or FormatVFAT
	Label  string          // volume label, trailing spaces removed
	Dirs   []string        // every directory but the root, sorted
	Files  []metadata.File // every regular file, sorted by path
}

// Read parses a config-drive image, telling iso9660 from vfat by content.
func Read(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	img, err := readImage(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("configdrive: %s: %w", path, err)
	}
	return img, nil
}

const (
	maxReadEntries = 100000
	maxReadDepth   = 32
)

var errNotDrive = errors.New("neither an iso9660 nor a FAT filesystem")

func readImage(r io.ReaderAt, size int64) (*Image, error) {
	var magic [6]byte
	if _, err := r.ReadAt(magic[:], 16*sector); err == nil && string(magic[1:]) == "CD001" {
		return readISO(&bounded{r, size})
	}
	var boot [512]byte
	if _, err := r.ReadAt(boot[:], 0); err == nil && boot[510] == 0x55 && boot[511] == 0xAA &&
		(bytes.HasPrefix(boot[54:], []byte("FAT")) || bytes.HasPrefix(boot[82:], []byte("FAT32"))) {
		return readFAT(&bounded{r, size}, boot[:])
	}
	return nil, errNotDrive
}

// bounded reads exactly, failing clearly past the image's end.
type bounded struct {
	r    io.ReaderAt
	size int64
}

func (b *bounded) read(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+int64(n) > b.size {
		return nil, fmt.Errorf("read of %d bytes at %d is past the image's end (%d bytes)", n, off, b.size)
	}
	buf := make([]byte, n)
	if _, err := b.r.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// collector gathers the tree under a budget: a crafted image can point many
// entries at one big extent, so content read is capped at a few times the
// image's size.
type collector struct {
	img     *Image
	entries int
	budget  int64
}

func (c *collector) add(path string, dir bool, data []byte) error {
	c.entries++
	if c.entries > maxReadEntries {
		return fmt.Errorf("more than %d entries", maxReadEntries)
	}
	c.budget -= int64(len(data))
	if c.budget < 0 {
		return fmt.Errorf("%s: file contents add up to more than the image holds", path)
	}
	if dir {
		c.img.Dirs = append(c.img.Dirs, path)
	} else {
		c.img.Files = append(c.img.Files, metadata.File{Path: path, Data: data})
	}
	return nil
}

func (c *collector) finish() *Image {
	sort.Strings(c.img.Dirs)
	sort.Slice(c.img.Files, func(i, j int) bool { return c.img.Files[i].Path < c.img.Files[j].Path })
	return c.img
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// iso9660: Rock Ridge names when the root says so (SUSP SP), else Joliet's,
// else the primary ones.

type isoReader struct {
	b       *bounded
	joliet  bool
	rr      bool
	skip    int // SUSP LEN_SKP
	visited map[uint32]bool
	c       collector
}

func readISO(b *bounded) (*Image, error) {
	pvd, err := b.read(16*sector, sector)
	if err != nil {
		return nil, err
	}
	if pvd[0] != 1 {
		return nil, fmt.Errorf("iso9660: first volume descriptor is type %d, not primary", pvd[0])
	}
	ir := &isoReader{b: b, visited: map[uint32]bool{}}
	ir.c.budget = 4*b.size + 1<<20
	ir.c.img = &Image{Format: FormatISO9660, Label: strings.TrimRight(string(pvd[40:72]), " ")}
	root := pvd[156:190]
	// Joliet is used only when the primary tree has no Rock Ridge.
	rootLBA, rootSize := binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:])
	if ok, skip, err := ir.hasRockRidge(rootLBA); err != nil {
		return nil, err
	} else if ok {
		ir.rr, ir.skip = true, skip
	} else {
		for i := int64(17); i < 16+64; i++ {
			vd, err := b.read(i*sector, sector)
			if err != nil || vd[0] == 255 {
				break
			}
			if vd[0] == 2 && string(vd[1:6]) == "CD001" && vd[88] == '%' && vd[89] == '/' && bytes.ContainsRune([]byte("@CE"), rune(vd[90])) {
				ir.joliet = true
				rootLBA, rootSize = binary.LittleEndian.Uint32(vd[158:]), binary.LittleEndian.Uint32(vd[166:])
				break
			}
		}
	}
	if err := ir.walk(rootLBA, rootSize, "", 0); err != nil {
		return nil, fmt.Errorf("iso9660: %w", err)
	}
	return ir.c.finish(), nil
}

func (ir *isoReader) hasRockRidge(lba uint32) (bool, int, error) {
	sec, err := ir.b.read(int64(lba)*sector, sector)
	if err != nil {
		return false, 0, fmt.Errorf("iso9660: root directory: %w", err)
	}
	n := int(sec[0])
	if n < 34 || n > len(sec) {
		return false, 0, fmt.Errorf("iso9660: root directory: bad first record length %d", n)
	}
	su := sec[33+int(sec[32])+1-int(sec[32])%2 : n]
	if len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[4] == 0xBE && su[5] == 0xEF {
		return true, int(su[6]), nil
	}
	return false, 0, nil
}

func (ir *isoReader) walk(lba, size uint32, path string, depth int) error {
	if depth > maxReadDepth {
		return fmt.Errorf("%s: deeper than %d directories", path, maxReadDepth)
	}
	if ir.visited[lba] {
		return fmt.Errorf("%s: directory loop at block %d", path, lba)
	}
	ir.visited[lba] = true
	data, err := ir.b.read(int64(lba)*sector, int(size))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for off := 0; off < len(data); {
		n := int(data[off])
		if n == 0 { // records never cross sectors: the rest of this one is padding
			off = (off/sector + 1) * sector
			continue
		}
		if n < 34 || off+n > len(data) || 33+int(data[off+32]) > n {
			return fmt.Errorf("%s: bad directory record at offset %d", path, off)
		}
		rec := data[off : off+n]
		off += n
		idLen := int(rec[32])
		ident := rec[33 : 33+idLen]
		if idLen == 1 && (ident[0] == 0 || ident[0] == 1) {
			continue
		}
		name, err := ir.name(rec, ident)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
			return fmt.Errorf("%s: bad name %q", path, name)
		}
		child := join(path, name)
		extent, length := binary.LittleEndian.Uint32(rec[2:]), binary.LittleEndian.Uint32(rec[10:])
		if rec[25]&0x80 != 0 {
			return fmt.Errorf("%s: multi-extent files are not supported", child)
		}
		if rec[25]&0x02 != 0 {
			if err := ir.c.add(child, true, nil); err != nil {
				return err
			}
			if err := ir.walk(extent, length, child, depth+1); err != nil {
				return err
			}
			continue
		}
		content := []byte{}
		if length > 0 {
			if content, err = ir.b.read(int64(extent)*sector, int(length)); err != nil {
				return fmt.Errorf("%s: %w", child, err)
			}
		}
		if err := ir.c.add(child, false, content); err != nil {
			return err
		}
	}
	return nil
}

func (ir *isoReader) name(rec, ident []byte) (string, error) {
	if ir.rr {
		su := rec[min(len(rec), 33+len(ident)+1-len(ident)%2+ir.skip):]
		if nm, ok, err := ir.rrName(su); err != nil || ok {
			return nm, err
		}
	}
	var name string
	if ir.joliet {
		if len(ident)%2 != 0 {
			return "", fmt.Errorf("odd-length Joliet name")
		}
		u := make([]uint16, len(ident)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(ident[2*i:])
		}
		name = string(utf16.Decode(u))
	} else {
		name = string(ident)
	}
	if i := strings.LastIndexByte(name, ';'); i >= 0 && rec[25]&0x02 == 0 {
		name = name[:i]
	}
	if rec[25]&0x02 == 0 {
		name = strings.TrimSuffix(name, ".")
	}
	return name, nil
}

// rrName collects the NM entries of a record, following CE continuations.
func (ir *isoReader) rrName(su []byte) (string, bool, error) {
	var name []byte
	found := false
	for hops := 0; hops < 16; hops++ {
		var next []byte
		for len(su) >= 4 {
			n := int(su[2])
			if n < 4 || n > len(su) {
				break
			}
			e := su[:n]
			su = su[n:]
			switch string(e[:2]) {
			case "NM":
				if n >= 5 && e[4]&0x06 == 0 { // not "." or ".."
					found = true
					name = append(name, e[5:]...)
				}
			case "CE":
				if n >= 28 {
					blk, off, ln := binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[12:]), binary.LittleEndian.Uint32(e[20:])
					b, err := ir.b.read(int64(blk)*sector+int64(off), int(ln))
					if err != nil {
						return "", false, fmt.Errorf("rock ridge continuation: %w", err)
					}
					next = b
				}
			case "ST":
				su = nil
			}
		}
		if next == nil {
			break
		}
		su = next
	}
	return string(name), found, nil
}

// FAT12/16/32 with VFAT long names.

type fatReader struct {
	b                    *bounded
	bps, spc             int64
	fatOff, dataOff      int64
	rootOff, rootEntries int64 // FAT12/16 fixed root
	rootCluster          uint32
	kind                 int // 12, 16 or 32
	clusters             uint32
	visited              map[uint32]bool // directory clusters, against loops
	c                    collector
}

func readFAT(b *bounded, boot []byte) (*Image, error) {
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(boot[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(boot[o:])) }
	fr := &fatReader{b: b, bps: le16(11), spc: int64(boot[13]), visited: map[uint32]bool{}}
	fr.c.budget = 4*b.size + 1<<20
	if fr.bps < 512 || fr.bps > 4096 || fr.bps&(fr.bps-1) != 0 || fr.spc == 0 || fr.spc&(fr.spc-1) != 0 {
		return nil, fmt.Errorf("fat: bad geometry (%d bytes a sector, %d sectors a cluster)", fr.bps, fr.spc)
	}
	reserved, nfats, rootEntries := le16(14), int64(boot[16]), le16(17)
	total := le16(19)
	if total == 0 {
		total = le32(32)
	}
	fatSecs := le16(22)
	if fatSecs == 0 {
		fatSecs = le32(36)
	}
	rootSecs := (rootEntries*32 + fr.bps - 1) / fr.bps
	fr.fatOff = reserved * fr.bps
	fr.rootOff = (reserved + nfats*fatSecs) * fr.bps
	fr.rootEntries = rootEntries
	dataStart := reserved + nfats*fatSecs + rootSecs
	fr.dataOff = dataStart * fr.bps
	if total <= dataStart || nfats == 0 {
		return nil, fmt.Errorf("fat: bad geometry (%d sectors, data from %d)", total, dataStart)
	}
	fr.clusters = uint32((total - dataStart) / fr.spc)
	label := ""
	switch {
	case fr.clusters < 4085:
		fr.kind = 12
	case fr.clusters < 65525:
		fr.kind = 16
	default:
		fr.kind = 32
		fr.rootCluster = uint32(le32(44))
	}
	if fr.kind == 32 {
		label = string(boot[71:82])
	} else {
		label = string(boot[43:54])
	}
	fr.c.img = &Image{Format: FormatVFAT, Label: strings.TrimRight(label, " ")}
	var root []byte
	var err error
	if fr.kind == 32 {
		root, err = fr.chain(fr.rootCluster, -1)
	} else {
		root, err = b.read(fr.rootOff, int(rootEntries*32))
	}
	if err != nil {
		return nil, fmt.Errorf("fat: root directory: %w", err)
	}
	if err := fr.walk(root, "", 0, true); err != nil {
		return nil, fmt.Errorf("fat: %w", err)
	}
	return fr.c.finish(), nil
}

func (fr *fatReader) next(c uint32) (uint32, error) {
	switch fr.kind {
	case 12:
		b, err := fr.b.read(fr.fatOff+int64(c)*3/2, 2)
		if err != nil {
			return 0, err
		}
		v := uint32(binary.LittleEndian.Uint16(b))
		if c%2 == 1 {
			v >>= 4
		}
		return v & 0xFFF, nil
	case 16:
		b, err := fr.b.read(fr.fatOff+int64(c)*2, 2)
		if err != nil {
			return 0, err
		}
		return uint32(binary.LittleEndian.Uint16(b)), nil
	default:
		b, err := fr.b.read(fr.fatOff+int64(c)*4, 4)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b) & 0x0FFFFFFF, nil
	}
}

// chain reads a cluster chain; want < 0 reads it all (directories).
func (fr *fatReader) chain(first uint32, want int64) ([]byte, error) {
	csize := fr.bps * fr.spc
	var out []byte
	c := first
	for steps := uint32(0); ; steps++ {
		if c < 2 || c >= fr.clusters+2 {
			return nil, fmt.Errorf("cluster %d out of range", c)
		}
		if steps > fr.clusters {
			return nil, fmt.Errorf("cluster chain from %d loops", first)
		}
		n := csize
		if want >= 0 {
			n = min(csize, want-int64(len(out)))
		}
		b, err := fr.b.read(fr.dataOff+int64(c-2)*csize, int(n))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		if want >= 0 && int64(len(out)) == want {
			return out, nil
		}
		nc, err := fr.next(c)
		if err != nil {
			return nil, err
		}
		eoc := uint32(0xFF8) << (fr.kind - 12)
		if fr.kind == 32 {
			eoc = 0x0FFFFFF8
		}
		if nc >= eoc {
			if want >= 0 {
				return nil, fmt.Errorf("cluster chain from %d ends after %d of %d bytes", first, len(out), want)
			}
			return out, nil
		}
		c = nc
	}
}

func (fr *fatReader) walk(table []byte, path string, depth int, root bool) error {
	if depth > maxReadDepth {
		return fmt.Errorf("%s: deeper than %d directories", path, maxReadDepth)
	}
	var lfn []uint16
	var lfnSum byte
	for off := 0; off+32 <= len(table); off += 32 {
		e := table[off : off+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 {
			lfn = nil
			continue
		}
		attr := e[11]
		if attr&0x3F == 0x0F {
			if e[0]&0x40 != 0 {
				lfn = nil
			}
			seq := int(e[0] & 0x1F)
			if seq == 0 {
				lfn = nil
				continue
			}
			part := make([]uint16, 0, 13)
			for _, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				part = append(part, binary.LittleEndian.Uint16(e[o:]))
			}
			lfn = append(part, lfn...) // entries come last part first
			lfnSum = e[13]
			continue
		}
		if attr&0x08 != 0 { // volume label: it is the one blkid shows
			if root {
				fr.c.img.Label = strings.TrimRight(string(e[:11]), " ")
			}
			lfn = nil
			continue
		}
		var short [11]byte
		copy(short[:], e[:11])
		if short[0] == 0x05 {
			short[0] = 0xE5
		}
		name := shortName(short, e[12])
		if lfn != nil && lfnChecksum(short) == lfnSum {
			if i := indexU16(lfn, 0); i >= 0 {
				lfn = lfn[:i]
			}
			name = string(utf16.Decode(lfn))
		}
		lfn = nil
		if name == "." || name == ".." {
			continue
		}
		if name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("%s: bad name %q", path, name)
		}
		child := join(path, name)
		cluster := uint32(binary.LittleEndian.Uint16(e[26:]))
		if fr.kind == 32 {
			cluster |= uint32(binary.LittleEndian.Uint16(e[20:])) << 16
		}
		size := int64(binary.LittleEndian.Uint32(e[28:]))
		if attr&0x10 != 0 {
			if err := fr.c.add(child, true, nil); err != nil {
				return err
			}
			if fr.visited[cluster] {
				return fmt.Errorf("%s: directory loop at cluster %d", child, cluster)
			}
			fr.visited[cluster] = true
			sub, err := fr.chain(cluster, -1)
			if err != nil {
				return fmt.Errorf("%s: %w", child, err)
			}
			if err := fr.walk(sub, child, depth+1, false); err != nil {
				return err
			}
			continue
		}
		content := []byte{}
		if size > 0 {
			var err error
			if content, err = fr.chain(cluster, size); err != nil {
				return fmt.Errorf("%s: %w", child, err)
			}
		}
		if err := fr.c.add(child, false, content); err != nil {
			return err
		}
	}
	return nil
}

func indexU16(s []uint16, v uint16) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// shortName renders an 8.3 entry, honouring the NT lower-case flags.
func shortName(s [11]byte, nt byte) string {
	base := strings.TrimRight(string(s[:8]), " ")
	ext := strings.TrimRight(string(s[8:]), " ")
	if nt&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if nt&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}
