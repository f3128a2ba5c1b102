package judge

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// reference.json holds SciPy's outputs for the same inputs
// (testdata/reference.py produced it).
type reference struct {
	MWU []struct {
		Name        string    `json:"name"`
		X           []float64 `json:"x"`
		Y           []float64 `json:"y"`
		Alternative string    `json:"alternative"`
		Exact       bool      `json:"exact"`
		U           float64   `json:"u"`
		P           float64   `json:"p"`
	} `json:"mwu"`
	Proportions []struct {
		Name        string  `json:"name"`
		Errors1     uint64  `json:"errors1"`
		Total1      uint64  `json:"total1"`
		Errors2     uint64  `json:"errors2"`
		Total2      uint64  `json:"total2"`
		Alternative string  `json:"alternative"`
		Method      string  `json:"method"`
		P           float64 `json:"p"`
	} `json:"proportions"`
}

func loadReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.MWU) == 0 || len(r.Proportions) == 0 {
		t.Fatal("empty reference")
	}
	return r
}

func alternative(s string) Alternative {
	if s == "greater" {
		return Greater
	}
	return TwoSided
}

// close reports whether got is within a relative 1e-6 (or 1e-12 absolute)
// of want.
func closeTo(got, want float64) bool {
	return math.Abs(got-want) <= 1e-12+1e-6*math.Abs(want)
}

func TestMannWhitneyAgainstSciPy(t *testing.T) {
	for _, c := range loadReference(t).MWU {
		t.Run(c.Name+"/"+c.Alternative, func(t *testing.T) {
			got, err := MannWhitney(c.X, c.Y, alternative(c.Alternative))
			if err != nil {
				t.Fatal(err)
			}
			if got.Exact != c.Exact {
				t.Errorf("exact = %v, SciPy used exact = %v", got.Exact, c.Exact)
			}
			if !closeTo(got.U, c.U) {
				t.Errorf("U = %v, SciPy %v", got.U, c.U)
			}
			if !closeTo(got.P, c.P) {
				t.Errorf("p = %.12g, SciPy %.12g", got.P, c.P)
			}
		})
	}
}

func TestProportionsAgainstSciPy(t *testing.T) {
	for _, c := range loadReference(t).Proportions {
		t.Run(c.Name+"/"+c.Alternative, func(t *testing.T) {
			got, err := CompareProportions(c.Errors1, c.Total1, c.Errors2, c.Total2, alternative(c.Alternative))
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != c.Method {
				t.Errorf("method = %s, want %s", got.Method, c.Method)
			}
			if !closeTo(got.P, c.P) {
				t.Errorf("p = %.12g, SciPy %.12g", got.P, c.P)
			}
		})
	}
}

func TestGroupedEqualsUngrouped(t *testing.T) {
	x := []float64{1, 1, 2, 3, 3, 3, 5}
	y := []float64{1, 2, 2, 2, 4}
	a, err := MannWhitney(x, y, Greater)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MannWhitneyGrouped([]Group{{1, 2, 1}, {2, 1, 3}, {3, 3, 0}, {5, 1, 0}, {4, 0, 1}}, Greater)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("grouped %+v, ungrouped %+v", b, a)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := MannWhitney(nil, []float64{1}, TwoSided); err == nil {
		t.Error("empty x accepted")
	}
	if _, err := CompareProportions(1, 0, 0, 10, TwoSided); err == nil {
		t.Error("zero total accepted")
	}
	if _, err := CompareProportions(11, 10, 0, 10, TwoSided); err == nil {
		t.Error("more errors than requests accepted")
	}
	r, err := MannWhitney([]float64{2, 2}, []float64{2, 2, 2}, Greater)
	if err != nil || r.P != 1 {
		t.Errorf("all ties: %+v %v, want p 1", r, err)
	}
}
