module mpsearch

go 1.26.8

require (
	codeberg.org/sbinet/npyio v0.14.0
	github.com/draffensperger/golp v0.0.0-20250721104811-2d405f0b4e68
	github.com/go-echarts/go-echarts/v2 v2.6.7
	golang.org/x/sys v0.50.0
	gonum.org/v1/gonum v0.17.0
	gonum.org/v1/netlib v0.0.0-20230729102104-8b8060e7531f
	google.golang.org/protobuf v1.36.12
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/kr/text v0.2.0 // indirect
	github.com/nlpodyssey/gopickle v0.3.0 // indirect
	golang.org/x/text v0.34.0 // indirect
)
