package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// sizeClass is a share of a tree's files and their size range.
type sizeClass struct {
	percent  int   // of the files
	min, max int64 // bytes, max exclusive
}

// fileMix is the file size mix of the generated trees, roughly that of a
// distribution's /usr: mostly small files (scripts, headers, configs, small
// libraries) and a few large ones (libraries, binaries); the mean is about
// 170 KiB.
var fileMix = []sizeClass{
	{50, 1 << 10, 8 << 10},
	{30, 8 << 10, 64 << 10},
	{15, 64 << 10, 512 << 10},
	{5, 512 << 10, 4 << 20},
}

// filesPerDir is how many files a generated directory holds.
const filesPerDir = 32

// fileSizes draws file sizes from fileMix until they add up to total
// bytes (the last file is cut to fit). The same seed gives the same sizes.
func fileSizes(total int64, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	var sizes []int64
	for left := total; left > 0; {
		p := rng.IntN(100)
		c := fileMix[len(fileMix)-1]
		for _, k := range fileMix {
			if p < k.percent {
				c = k
				break
			}
			p -= k.percent
		}
		n := min(c.min+rng.Int64N(c.max-c.min), left)
		sizes = append(sizes, n)
		left -= n
	}
	return sizes
}

// makeTree writes files of the given sizes under dir, filesPerDir to a
// directory in two levels (d000/d00/f00), with incompressible content (ext4
// keeps runs of zeros as holes, which would make the copy cheaper than a
// real tree's).
func makeTree(dir string, sizes []int64) error {
	var biggest int64
	for _, n := range sizes {
		biggest = max(biggest, n)
	}
	// One random block, read at varying offsets.
	block := make([]byte, biggest+64<<10)
	rand.NewChaCha8([32]byte{'v', 'x', 'n'}).Read(block)
	for i, n := range sizes {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/(filesPerDir*filesPerDir)), fmt.Sprintf("d%02d", i/filesPerDir%filesPerDir))
		if i%filesPerDir == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		off := int64(i*4099) % (64 << 10)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%02d", i%filesPerDir)), block[off:off+n], 0o644); err != nil {
			return fmt.Errorf("writing the test tree: %w", err)
		}
	}
	return nil
}
