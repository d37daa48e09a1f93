package main

import (
	"bytes"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// iostreams is where a command reads and writes, and what it knows about
// the terminal, so that commands never guess and tests can fake it.
type iostreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// StdoutTTY says a person is reading: tables are for them.
	StdoutTTY bool
	// Color is on for a terminal unless NO_COLOR is set.
	Color bool
}

func systemIO() *iostreams {
	tty := isatty.IsTerminal(os.Stdout.Fd())
	_, noColor := os.LookupEnv("NO_COLOR")
	return &iostreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, StdoutTTY: tty, Color: tty && !noColor}
}

// testIO returns streams over buffers: no TTY, no colour.
func testIO() (*iostreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &iostreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// paint wraps s in an ANSI colour when colour is on.
func (io *iostreams) paint(code, s string) string {
	if !io.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}
