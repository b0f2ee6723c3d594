package cli

import "mpsearch/tensor"

type tensorT = tensor.Tensor

func tensorFrom(data []float64, shape ...int) *tensor.Tensor { return tensor.FromData(data, shape...) }
