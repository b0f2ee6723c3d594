package quant

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// TestQuantizerTableEvidence is the table of uniform weights: the
// Fashion-MNIST fixtures with every layer at 4, 3 and 2 bits and uint8
// activations (ranges from the first 1024 training images), weights from
// the job's sources: round to nearest and GPTQ per channel (NewCodes), and
// blocks of 32 inputs (NewBlockCodes: round to nearest with the clipping
// search, GPTQ with the clipping search), top-1 on the 10,000 test images,
// float32 matrix products, with each configuration's weight size (codes
// plus fp16 scales, SizeBits). Opt-in (minutes per model):
// MPSEARCH_QUANT_TABLE=lenet,vgg,resnet.
func TestQuantizerTableEvidence(t *testing.T) {
	which := os.Getenv("MPSEARCH_QUANT_TABLE")
	if which == "" {
		t.Skip("opt-in: MPSEARCH_QUANT_TABLE=lenet,vgg,resnet (minutes per model)")
	}
	calib, test := evidenceData(t)
	ctx := context.Background()
	batches := []*tensor.Tensor{calib.X}
	widths := []int{2, 3, 4}
	rows := []string{"| model (float) | bits | rtn | gptq | rtn, g32, MSE | gptq, g32, MSE | size per channel / g32 |", "|---|---|---|---|---|---|---|"}
	for _, m := range []struct{ name, path string }{{"lenet", "fmnist-lenet/lenet.onnx"}, {"vgg", "vgg-fmnist/model.onnx"}, {"resnet", "resnet-fmnist/model.onnx"}} {
		if !strings.Contains(which, m.name) {
			continue
		}
		src, err := onnx.Load(fixture.Path(m.path))
		if err != nil {
			t.Fatal(err)
		}
		net, err := network.Build(src, network.Options{Precision: network.F32})
		if err != nil {
			t.Fatal(err)
		}
		ranges, err := ObserveRanges(ctx, net, batches)
		if err != nil {
			t.Fatal(err)
		}
		hook := ActHook(ranges.ActQuantizers())
		var sources []WeightCodes
		for _, method := range []string{MethodRTN, MethodGPTQ} {
			c, err := NewCodes(ctx, method, net, batches, CodesOptions{Widths: widths})
			if err != nil {
				t.Fatal(err)
			}
			sources = append(sources, c)
		}
		for _, method := range []string{MethodRTN, MethodGPTQ} {
			c, err := NewBlockCodes(ctx, method, net, batches, BlockCodesOptions{CodesOptions: CodesOptions{Widths: widths}, Block: 32, MSE: true})
			if err != nil {
				t.Fatal(err)
			}
			sources = append(sources, c)
		}
		fl := accuracy(t, net, test, nil)
		for _, bits := range []int{4, 3, 2} {
			row := fmt.Sprintf("| %s (%.2f%%) | W%dA8 |", m.name, fl, bits)
			for _, c := range sources {
				ws := NewWeightSetterCodes(net, c)
				for li := range net.Layers() {
					if err := ws.Set(li, bits); err != nil {
						t.Fatal(err)
					}
				}
				row += fmt.Sprintf(" %.2f |", accuracy(t, net, test, hook))
				ws.Restore()
			}
			var perCh, g32 int64
			for _, l := range net.Layers() {
				w := net.Params()[l.Weight].Value
				r := w.Shape[l.ChannelAxis]
				perCh += SizeBits(r, w.Size()/r, bits, 0)
				_, gs, err := BlockOrder(w.Shape, l.ChannelAxis, 32)
				if err != nil {
					t.Fatal(err)
				}
				g32 += SizeBits(r, w.Size()/r, bits, gs)
			}
			row += fmt.Sprintf(" %d / %d B |", perCh/8, g32/8)
			rows = append(rows, row)
			t.Log(row)
		}
	}
	t.Log("\n" + strings.Join(rows, "\n"))
}
