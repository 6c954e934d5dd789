package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a number of bytes given on the command line either as a plain
// integer (1048576) or with a unit: B, KiB, MiB, GiB (powers of 1024) or kB,
// MB, GB (powers of 1000). Units are matched without regard to case. It
// implements flag.Value.
type byteSize int64

// byteUnit returns the multiplier of a unit, matched without regard to case.
func byteUnit(unit string) (int64, bool) {
	switch strings.ToLower(unit) {
	case "", "b":
		return 1, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "kb":
		return 1000, true
	case "mb":
		return 1000 * 1000, true
	case "gb":
		return 1000 * 1000 * 1000, true
	}
	return 0, false
}

// parseByteSize parses s as a byteSize. Its errors name s, as the command
// line's do; a valueError says why without it, for a value from the
// environment.
func parseByteSize(s string) (byteSize, error) {
	s = strings.TrimSpace(s)
	refuse := func(why string) error {
		return &valueError{err: fmt.Errorf("byte size %q: %s", s, why), without: "byte size: " + why}
	}
	digits := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(s)
	}
	if digits == 0 {
		return 0, refuse("want a whole number of bytes, optionally with a unit such as KiB, MiB or MB")
	}
	n, err := strconv.ParseInt(s[:digits], 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, refuse("too large")
		}
		return 0, refuse("want a whole number of bytes")
	}
	mult, ok := byteUnit(strings.TrimSpace(s[digits:]))
	if !ok {
		return 0, refuse("unknown unit (want B, KiB, MiB, GiB, kB, MB or GB)")
	}
	if n > math.MaxInt64/mult {
		return 0, refuse("too large")
	}
	return byteSize(n * mult), nil
}

// String formats b with the largest binary unit that divides it exactly, so
// that flag defaults read as 10MiB rather than 10485760.
func (b byteSize) String() string {
	for _, u := range []struct {
		name string
		size byteSize
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set implements flag.Value.
func (b *byteSize) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
