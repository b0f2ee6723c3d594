package dataset

import (
	"context"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"mpsearch/tensor"
)

// isImageName reports whether name has a PNG or JPEG extension.
func isImageName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// imageFile is one image of a folder dataset.
type imageFile struct {
	path  string
	label int
}

// listFolder returns the class names (sorted) and the image files, class by
// class, each class's files in lexical order of their path. Files without a
// PNG/JPEG extension and hidden files or folders are skipped.
func listFolder(root string) ([]string, []imageFile, error) {
	entries, err := os.ReadDir(root) // sorted by name
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: %w", err)
	}
	var classes []string
	var files []imageFile
	for _, e := range entries {
		if hidden(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		st, err := os.Stat(dir) // follows symbolic links
		if err != nil {
			return nil, nil, fmt.Errorf("dataset: %w", err)
		}
		if !st.IsDir() {
			continue
		}
		label := len(classes)
		n := len(files)
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != dir && hidden(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && isImageName(d.Name()) {
				files = append(files, imageFile{path: p, label: label})
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("dataset: %w", err)
		}
		if len(files) == n {
			return nil, nil, formatErr("dataset: class folder %s has no PNG or JPEG images", dir)
		}
		classes = append(classes, e.Name())
	}
	if len(classes) == 0 {
		return nil, nil, formatErr("dataset: folder %s has no class sub-folders; want one sub-folder of PNG/JPEG images per class", root)
	}
	return classes, files, nil
}

// decodeConfig reads the size and colour model of an image file.
func decodeConfig(path string) (image.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return image.Config{}, formatErr("dataset: %s: not a readable PNG or JPEG image: %v", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return image.Config{}, formatErr("dataset: %s: empty image (%dx%d)", path, cfg.Width, cfg.Height)
	}
	return cfg, nil
}

func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, formatErr("dataset: %s: not a readable PNG or JPEG image: %v", path, err)
	}
	return img, nil
}

func isGrayModel(m color.Model) bool { return m == color.GrayModel || m == color.Gray16Model }

func is16Bit(m color.Model) bool {
	return m == color.Gray16Model || m == color.RGBA64Model || m == color.NRGBA64Model
}

// folder is an image folder opened for streaming: its files, their
// header sizes, and the shape every image is converted to.
type folder struct {
	classes []string
	files   []imageFile
	cfgs    []image.Config
	c, h, w int
}

// openFolder lists a folder of class sub-folders of PNG/JPEG images (the
// first opt.Limit files) and reads the size and colour model of each from
// its header; no image is decoded.
func openFolder(root string, opt Options) (*folder, error) {
	classes, files, err := listFolder(root)
	if err != nil {
		return nil, err
	}
	if opt.Limit > 0 && opt.Limit < len(files) {
		files = files[:opt.Limit]
	}
	cfgs := make([]image.Config, len(files))
	allGray := true
	for i, f := range files {
		if cfgs[i], err = decodeConfig(f.path); err != nil {
			return nil, err
		}
		allGray = allGray && isGrayModel(cfgs[i].ColorModel)
		if opt.Resize == [2]int{} && (cfgs[i].Width != cfgs[0].Width || cfgs[i].Height != cfgs[0].Height) {
			return nil, formatErr("dataset: %s is %dx%d but %s is %dx%d; set a resize size to use images of different sizes",
				f.path, cfgs[i].Width, cfgs[i].Height, files[0].path, cfgs[0].Width, cfgs[0].Height)
		}
	}
	fo := &folder{classes: classes, files: files, cfgs: cfgs, c: 3, h: cfgs[0].Height, w: cfgs[0].Width}
	if allGray || opt.Gray {
		fo.c = 1
	}
	if opt.Resize != [2]int{} {
		fo.h, fo.w = opt.Resize[0], opt.Resize[1]
	}
	return fo, nil
}

// parts starts a pass over the folder: images are decoded when read.
func (fo *folder) parts() (*parts, error) {
	y := make([]int, len(fo.files))
	for i, f := range fo.files {
		y[i] = f.label
	}
	return &parts{rows: &folderRows{fo: fo}, labels: &sliceLabels{y: y}, n: len(fo.files), stored: []int{fo.c, fo.h, fo.w}}, nil
}

// folderRows decodes a folder's images in order, converted to c channels
// and resized to h×w.
type folderRows struct {
	fo   *folder
	done int
}

func (r *folderRows) next(ctx context.Context, k int) ([]float64, int, error) {
	fo := r.fo
	size := fo.c * fo.h * fo.w
	dst := make([]float64, k*size)
	for i := range k {
		if err := ctx.Err(); err != nil {
			return nil, i, err
		}
		f, cfg := fo.files[r.done], fo.cfgs[r.done]
		img, err := decodeImage(f.path)
		if err != nil {
			return dst[:i*size], i, err
		}
		b := img.Bounds()
		if b.Dx() != cfg.Width || b.Dy() != cfg.Height {
			return dst[:i*size], i, formatErr("dataset: %s: decoded size %dx%d differs from its header's %dx%d", f.path, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
		}
		t := imageTensor(img, fo.c)
		if t.Shape[2] != fo.h || t.Shape[3] != fo.w {
			t = resizeBilinear(t, fo.h, fo.w)
		}
		copy(dst[i*size:(i+1)*size], t.Data)
		r.done++
	}
	return dst, k, nil
}

// imageTensor converts img to a [1,c,H,W] tensor with values in [0,1]:
// 8-bit samples divided by 255, 16-bit ones by 65535. With c == 1 a colour
// image becomes its BT.601 luminance; with c == 3 a gray image is repeated
// in the three channels. Alpha is ignored (colours are not premultiplied).
func imageTensor(img image.Image, c int) *tensor.Tensor {
	b := img.Bounds()
	h, w := b.Dy(), b.Dx()
	t := tensor.New(1, c, h, w)
	hw := h * w
	gray := isGrayModel(img.ColorModel())
	deep := is16Bit(img.ColorModel())
	for yy := 0; yy < h; yy++ {
		for xx := 0; xx < w; xx++ {
			p := yy*w + xx
			px := img.At(b.Min.X+xx, b.Min.Y+yy)
			var r, g, bl float64
			switch {
			case gray && deep:
				v := float64(color.Gray16Model.Convert(px).(color.Gray16).Y) / 65535
				r, g, bl = v, v, v
			case gray:
				v := float64(color.GrayModel.Convert(px).(color.Gray).Y) / 255
				r, g, bl = v, v, v
			case deep:
				q := color.NRGBA64Model.Convert(px).(color.NRGBA64)
				r, g, bl = float64(q.R)/65535, float64(q.G)/65535, float64(q.B)/65535
			default:
				q := color.NRGBAModel.Convert(px).(color.NRGBA)
				r, g, bl = float64(q.R)/255, float64(q.G)/255, float64(q.B)/255
			}
			switch {
			case c == 3:
				t.Data[p], t.Data[hw+p], t.Data[2*hw+p] = r, g, bl
			case gray:
				t.Data[p] = r
			default:
				t.Data[p] = lumR*r + lumG*g + lumB*bl
			}
		}
	}
	return t
}
