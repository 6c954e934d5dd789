package synth

import (
	"math/rand/v2"
	"strconv"
)

// NHS numbers are ten digits, the last a Modulus 11 check digit. NHS England
// keeps 999 000 0000 to 999 999 9999 for testing, so numbers drawn from it
// never name a real patient.
const (
	nhsTestBase  = 999_000_000 // first nine digits of the lowest test number
	nhsTestCount = 1_000_000   // nine-digit stems in the test range
)

// validNHSNumber reports whether s is an NHS number: ten digits whose last
// is the Modulus 11 check digit of the other nine.
func validNHSNumber(s string) bool {
	if len(s) != 10 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	check, ok := modulus11(s[:9])
	return ok && s[9]-'0' == check
}

// modulus11 returns the check digit of a nine-digit stem: weights 10 down to
// 2, remainder subtracted from 11, where 11 becomes 0 and 10 means the stem
// is never issued.
func modulus11(stem string) (byte, bool) {
	weighted := 0
	for i, c := range []byte(stem) {
		weighted += (10 - i) * int(c-'0')
	}
	switch check := 11 - weighted%11; check {
	case 10:
		return 0, false
	case 11:
		return 0, true
	default:
		return byte(check), true
	}
}

// nhsSequence hands out distinct valid test NHS numbers in an order set by
// the seed: the stems of the test range are visited in the order of the
// permutation k → (a·k + b) mod 10⁶, with a coprime to 10⁶, and stems
// without a check digit are passed over.
type nhsSequence struct {
	a, b, k uint64
}

func newNHSSequence(seed uint64) *nhsSequence {
	r := rand.New(rand.NewPCG(seed, streamNHS))
	a := r.Uint64N(nhsTestCount)
	for a%2 == 0 || a%5 == 0 {
		a = r.Uint64N(nhsTestCount)
	}
	return &nhsSequence{a: a, b: r.Uint64N(nhsTestCount)}
}

// next returns the next number. Once the range is used up (after
// MaxPatients and more) it starts again from the first.
func (s *nhsSequence) next() string {
	for {
		stem := strconv.FormatUint(nhsTestBase+(s.a*s.k+s.b)%nhsTestCount, 10)
		s.k = (s.k + 1) % nhsTestCount
		if check, ok := modulus11(stem); ok {
			return stem + string('0'+check)
		}
	}
}
