package hessian

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// benchCase is a trace-estimation problem for BenchmarkTraceProducts.
type benchCase struct {
	name  string
	build func() *MatrixOracle
	once  sync.Once
	o     *MatrixOracle
}

func (c *benchCase) oracle() *MatrixOracle {
	c.once.Do(func() { c.o = c.build() })
	return c.o
}

func mustBench(o *MatrixOracle, err error) *MatrixOracle {
	if err != nil {
		panic(err) // the benchmark problems are fixed and valid
	}
	return o
}

var benchCases = []*benchCase{
	// 2000 parameters, 5 blocks of different sizes and curvature scales,
	// 100 parameters outside every block; eigenvalues 10 i^-1.5, every
	// fifth negative (see decayingProblem).
	{name: "decay2000x5", build: func() *MatrixOracle {
		blocks := []Block{{"conv1", 0, 150}, {"conv2", 150, 450}, {"conv3", 600, 600}, {"fc1", 1300, 500}, {"fc2", 1800, 200}}
		a := decayingProblem(11, 2000, blocks, []float64{1, 0.3, 0.5, 2, 1})
		o, err := NewMatrixOracle(a, blocks)
		return mustBench(o, err)
	}},
	// 600 parameters in 40 blocks of 15: many small layers.
	{name: "decay600x40", build: func() *MatrixOracle {
		var blocks []Block
		scales := make([]float64, 40)
		for i := range 40 {
			blocks = append(blocks, Block{fmt.Sprintf("layer%02d", i), 15 * i, 15})
			scales[i] = 1 + float64(i%3)
		}
		a := decayingProblem(2, 600, blocks, scales)
		o, err := NewMatrixOracle(a, blocks)
		return mustBench(o, err)
	}},
	// 600 parameters, 5 blocks, slowly decaying spectrum 10 i^-0.5: plain
	// Hutchinson's good case.
	{name: "slow600x5", build: func() *MatrixOracle {
		blocks := []Block{{"a", 0, 60}, {"b", 60, 180}, {"c", 240, 120}, {"d", 360, 200}, {"e", 560, 40}}
		a := withSpectrum(newRand(1, 2), powerLaw(600, 10, 0.5))
		o, err := NewMatrixOracle(a, blocks)
		return mustBench(o, err)
	}},
}

// BenchmarkTraceProducts reports the Hessian-vector products each estimator
// needs to reach a relative standard error of DefaultTol on every block
// (products/op), whether it got there within benchMaxProbes probes
// (converged), the worst relative error, and the time on an explicit matrix.
// Plain Hutchinson takes about a minute on decay2000x5 and stops at
// benchMaxProbes on decay600x40.
func BenchmarkTraceProducts(b *testing.B) {
	const benchMaxProbes = 100000
	opts := Options{MaxProbes: benchMaxProbes, ProbesPerPass: 32, Seed: 1}
	estimators := []struct {
		name string
		run  func(Oracle) (*Result, error)
	}{
		{"plain", func(o Oracle) (*Result, error) { return Hutchinson(context.Background(), o, opts) }},
		{"hutch++global", func(o Oracle) (*Result, error) {
			return HutchPlusPlus(context.Background(), o, PPOptions{Options: opts})
		}},
		{"hutch++perblock", func(o Oracle) (*Result, error) {
			return HutchPlusPlus(context.Background(), o, PPOptions{Options: opts, Deflation: DeflatePerBlock})
		}},
	}
	for _, bc := range benchCases {
		for _, est := range estimators {
			b.Run(bc.name+"/"+est.name, func(b *testing.B) {
				o := bc.oracle()
				var products, worst, converged float64
				for b.Loop() {
					c := &countingOracle{Oracle: o}
					res, err := est.run(c)
					if err != nil {
						b.Fatal(err)
					}
					products += float64(c.products)
					if res.Converged {
						converged++
					}
					for _, bt := range res.Blocks {
						worst = max(worst, bt.RelErr)
					}
				}
				b.ReportMetric(products/float64(b.N), "products/op")
				b.ReportMetric(converged/float64(b.N), "converged")
				b.ReportMetric(worst, "worst-relerr")
			})
		}
	}
}

// BenchmarkHVP times one batched product of 32 directions on decay2000x5.
func BenchmarkHVP(b *testing.B) {
	o := benchCases[0].oracle()
	const k = 32
	v := make([]float64, k*o.Dim())
	hv := make([]float64, len(v))
	for i := range v {
		v[i] = 1
	}
	for b.Loop() {
		if err := o.HVP(context.Background(), v, hv, k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(k, "directions/op")
}
