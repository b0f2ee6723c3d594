package costmodel

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"mpsearch/kernels"
)

// TestLayerPrograms: every path of the engine's layer step gets a program
// on which the engine takes that path (newLayerProgram checks it against
// intengine.LayerPaths), and a shape whose path the engine would not take
// is refused.
func TestLayerPrograms(t *testing.T) {
	pad1 := kernels.ConvShape{C: 8, H: 6, W: 6, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	one := kernels.ConvShape{C: 8, H: 6, W: 6, KH: 1, KW: 1}
	mk := func(name string, g kernels.ConvShape, cout, groups int, set func(*LayerShape)) LayerShape {
		s, err := ConvLayer(name, g, cout, groups)
		if err != nil {
			t.Fatal(err)
		}
		set(&s)
		return s
	}
	gemm := GemmLayer("fc", "Gemm", 1, 40, 12)
	logits := gemm
	logits.Logits = true
	matmul := GemmLayer("mm", "MatMul", 5, 16, 24)
	shapes := []LayerShape{
		mk("nchw", pad1, 16, 1, func(*LayerShape) {}),
		mk("nhwc", pad1, 16, 1, func(s *LayerShape) { s.InNHWC, s.OutNHWC = true, true }),
		mk("nhwc-in", pad1, 16, 1, func(s *LayerShape) { s.InNHWC = true }),
		mk("nchw-in", pad1, 16, 1, func(s *LayerShape) { s.OutNHWC = true }),
		mk("direct", one, 16, 1, func(s *LayerShape) { s.InNHWC, s.OutNHWC, s.Direct = true, true, true }),
		mk("depthwise", pad1, 8, 8, func(s *LayerShape) { s.InNHWC, s.OutNHWC, s.Depthwise = true, true, true }),
		mk("grouped", pad1, 16, 2, func(s *LayerShape) { s.InNHWC, s.OutNHWC = true, true }),
		mk("conv-logits", pad1, 4, 1, func(s *LayerShape) { s.InNHWC, s.Logits = true, true }),
		gemm, logits, matmul,
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range shapes {
		for _, kb := range []int{8, 1} {
			p, err := newLayerProgram(context.Background(), s, kb, 2, 1, rng)
			if err != nil {
				t.Errorf("%s at %d bits: %v", s.Name, kb, err)
				continue
			}
			if err := p.run(); err != nil {
				t.Errorf("%s: running the step: %v", s.Name, err)
			}
			p.release()
		}
	}
	bad := shapes[0]
	bad.Direct = true
	if _, err := newLayerProgram(context.Background(), bad, 8, 1, 1, rng); err == nil {
		t.Errorf("a 3x3 convolution claimed direct: no error; want the engine's path refused")
	}
	if _, err := Measure(context.Background(), shapes[:2], []int{8}, MeasureOptions{Repeats: 1, MinSample: 10 * time.Microsecond}); err != nil {
		t.Error(err)
	}
}
