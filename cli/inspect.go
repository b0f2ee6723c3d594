package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
)

func init() {
	commands["inspect"] = command{"layers, shapes, parameters and MACs of a model", runInspect}
}

type inspectLayer struct {
	Name        string `json:"name"`
	Op          string `json:"op"`
	WeightShape []int  `json:"weight_shape"`
	Params      int    `json:"params"`
	MACs        int64  `json:"macs"`
	OutShape    []int  `json:"output_shape"`
}

func runInspect(e *env, args []string) error {
	var mf modelFlags
	fs := newFlags(e, "inspect", "inspect [--model M] [--json]")
	mf.register(fs, false)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	net, err := mf.loadModel(nil)
	if err != nil {
		return err
	}
	var rows []inspectLayer
	var totalParams int
	var totalMACs int64
	for _, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		params := w.Size()
		if l.Bias >= 0 {
			params += net.Params()[l.Bias].Value.Size()
		}
		rows = append(rows, inspectLayer{Name: l.Node, Op: l.Op, WeightShape: w.Shape, Params: params, MACs: l.MACs, OutShape: l.OutShape[1:]})
		totalParams += params
		totalMACs += l.MACs
	}
	allParams := 0
	for _, p := range net.Params() {
		allParams += p.Value.Size()
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"input": net.InputName, "input_shape": net.SampleShape, "output": net.OutputName,
			"nodes": net.NodeCount(), "layers": rows, "layer_params": totalParams, "total_params": allParams, "macs": totalMACs,
		})
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "layer\top\tweight shape\tparams\tMACs/sample\toutput shape\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%v\t\n", r.Name, r.Op, r.WeightShape, r.Params, r.MACs, r.OutShape)
	}
	fmt.Fprintf(tw, "total\t\t\t%d\t%d\t\t\n", totalParams, totalMACs)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "input %q %v, output %q; %d nodes, %d parameters in all\n", net.InputName, net.SampleShape, net.OutputName, net.NodeCount(), allParams)
	return nil
}
