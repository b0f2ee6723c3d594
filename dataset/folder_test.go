package dataset

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"strings"
	"testing"
)

// pattern returns the 3x4 test image v(y, x) = 20(4y + x) + off.
func pattern(off int) [][]int {
	v := make([][]int, 3)
	for y := range v {
		v[y] = make([]int, 4)
		for x := range v[y] {
			v[y][x] = 20*(4*y+x) + off
		}
	}
	return v
}

func grayPNG(t *testing.T, v [][]int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, len(v[0]), len(v)))
	for y, row := range v {
		for x, p := range row {
			img.SetGray(x, y, color.Gray{Y: uint8(p)})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rgbPNG encodes an NRGBA image with R = v, G = 255 - v, B = 7.
func rgbPNG(t *testing.T, v [][]int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, len(v[0]), len(v)))
	for y, row := range v {
		for x, p := range row {
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(p), G: uint8(255 - p), B: 7, A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestFolderGray(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bird/a.png", grayPNG(t, pattern(0)))
	writeFile(t, dir, "bird/b.PNG", grayPNG(t, pattern(1)))
	writeFile(t, dir, "cat/sub/c.png", grayPNG(t, pattern(2)))
	writeFile(t, dir, "cat/notes.txt", []byte("skipped: not an image"))
	writeFile(t, dir, "cat/.hidden.png", []byte("skipped: hidden"))
	writeFile(t, dir, ".git/x.png", []byte("skipped: hidden folder"))
	writeFile(t, dir, "readme.md", []byte("skipped: not a folder"))

	d, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.X.Shape, []int{3, 1, 3, 4}; !equalInts(got, want) {
		t.Fatalf("shape %v; want %v", got, want)
	}
	if got, want := d.Y, []int{0, 0, 1}; !equalInts(got, want) {
		t.Errorf("labels %v; want %v", got, want)
	}
	if got := strings.Join(d.Classes, ","); got != "bird,cat" {
		t.Errorf("classes %q; want \"bird,cat\"", got)
	}
	for n := range 3 {
		for y, row := range pattern(n) {
			for x, p := range row {
				if got := d.X.Data[n*12+y*4+x]; got != float64(p)/255 {
					t.Errorf("x[%d,0,%d,%d] = %v; want %d/255", n, y, x, got, p)
				}
			}
		}
	}
	if s := d.Subset(1, 2); !equalInts(s.Y, []int{0, 1}) || len(s.Classes) != 2 {
		t.Errorf("Subset(1, 2): labels %v classes %v", s.Y, s.Classes)
	}

	lim, err := Load(dir, Options{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if lim.Len() != 2 || !equalInts(lim.Y, []int{0, 0}) || lim.X.Data[12] != 1.0/255 {
		t.Errorf("Limit 2: %d samples, labels %v, x[1,0,0,0] = %v; want the two bird images", lim.Len(), lim.Y, lim.X.Data[12])
	}

	// Resize each image to 5x7; the reference is PyTorch 1.13:
	// F.interpolate(torch.tensor(pattern/255).view(1,1,3,4), size=(5,7),
	// mode="bilinear", align_corners=False), row 2 of image 0.
	rs, err := Load(dir, Options{Resize: [2]int{5, 7}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rs.X.Shape, []int{3, 1, 5, 7}; !equalInts(got, want) {
		t.Fatalf("resized shape %v; want %v", got, want)
	}
	row2 := []float64{0.3137254901960784, 0.34173669467787116, 0.3865546218487395, 0.43137254901960786, 0.47619047619047616, 0.5210084033613446, 0.5490196078431373}
	if got := maxAbsDiff(rs.X.Data[14:21], row2); got > resizeTol {
		t.Errorf("resized row 2 = %v; want %v (PyTorch)", rs.X.Data[14:21], row2)
	}
}

func TestFolderColour(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a/1.png", rgbPNG(t, pattern(0)))
	writeFile(t, dir, "b/2.png", grayPNG(t, pattern(5)))

	d, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.X.Shape, []int{2, 3, 3, 4}; !equalInts(got, want) {
		t.Fatalf("shape %v; want %v", got, want)
	}
	for y, row := range pattern(0) {
		for x, p := range row {
			i := y*4 + x
			got := []float64{d.X.Data[i], d.X.Data[12+i], d.X.Data[24+i]}
			want := []float64{float64(p) / 255, float64(255-p) / 255, 7.0 / 255}
			if maxAbsDiff(got, want) != 0 {
				t.Errorf("RGB pixel (%d,%d) = %v; want %v", y, x, got, want)
			}
			// The gray image is repeated in the three channels.
			for c := range 3 {
				if g := d.X.Data[36+c*12+i]; g != float64(p+5)/255 {
					t.Errorf("gray image channel %d pixel (%d,%d) = %v; want %d/255", c, y, x, g, p+5)
				}
			}
		}
	}

	g, err := Load(dir, Options{Gray: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.X.Shape, []int{2, 1, 3, 4}; !equalInts(got, want) {
		t.Fatalf("gray shape %v; want %v", got, want)
	}
	for y, row := range pattern(0) {
		for x, p := range row {
			want := (0.299*float64(p) + 0.587*float64(255-p) + 0.114*7) / 255
			if got := g.X.Data[y*4+x]; math.Abs(got-want) > 1e-15 {
				t.Errorf("luminance (%d,%d) = %v; want %v", y, x, got, want)
			}
			if got := g.X.Data[12+y*4+x]; got != float64(p+5)/255 {
				t.Errorf("gray image under Gray (%d,%d) = %v; want %d/255", y, x, got, p+5)
			}
		}
	}
}

// jpegTol bounds the error of a flat colour through JPEG at quality 100:
// one or two levels of YCbCr rounding out of 255.
const jpegTol = 3.0 / 255

func TestFolderJPEGAndSizes(t *testing.T) {
	dir := t.TempDir()
	want := color.NRGBA{R: 200, G: 100, B: 50, A: 255}
	img := image.NewNRGBA(image.Rect(0, 0, 16, 8))
	for y := range 8 {
		for x := range 16 {
			img.SetNRGBA(x, y, want)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "x/flat.jpg", b.Bytes())
	writeFile(t, dir, "y/small.png", rgbPNG(t, pattern(0)))

	if _, err := Load(dir, Options{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "small.png") {
		t.Errorf("images of different sizes: error %v; want ErrFormat naming small.png", err)
	}
	d, err := Load(dir, Options{Resize: [2]int{4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.X.Shape, []int{2, 3, 4, 8}; !equalInts(got, want) {
		t.Fatalf("shape %v; want %v", got, want)
	}
	for c, v := range []uint8{want.R, want.G, want.B} {
		for i := range 32 {
			if got := d.X.Data[c*32+i]; math.Abs(got-float64(v)/255) > jpegTol {
				t.Fatalf("JPEG channel %d value %d = %v; want %d/255 within %v", c, i, got, v, jpegTol)
			}
		}
	}

	// A corrupt image is named in the error.
	writeFile(t, dir, "y/broken.png", []byte("\x89PNG\r\n\x1a\nnot really"))
	if _, err := Load(dir, Options{Resize: [2]int{4, 8}}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("corrupt PNG: error %v; want ErrFormat naming broken.png", err)
	}
}

func TestFolder16Bit(t *testing.T) {
	dir := t.TempDir()
	img := image.NewGray16(image.Rect(0, 0, 2, 1))
	img.SetGray16(0, 0, color.Gray16{Y: 1000})
	img.SetGray16(1, 0, color.Gray16{Y: 65535})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "only/a.png", b.Bytes())
	d, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.X.Data, []float64{1000.0 / 65535, 1}; !equalInts(d.X.Shape, []int{1, 1, 1, 2}) || maxAbsDiff(got, want) != 0 {
		t.Errorf("16-bit gray: %v %v; want [1 1 1 2] %v", d.X.Shape, got, want)
	}
}
