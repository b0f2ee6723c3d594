# Sourced by the scripts: cgo flags for lp_solve (golp) and OpenBLAS (gonum netlib).
export CGO_CFLAGS="${CGO_CFLAGS:--I/usr/include/lpsolve}"
export CGO_LDFLAGS="${CGO_LDFLAGS:--llpsolve55 -lm -ldl -lcolamd -lopenblas}"
