// Writes, with dlib itself, the files the original BearID's bearembed and bearsvm write, so
// that BearID's readers are tested against dlib's own bytes (tests/fixtures/dlib/).
//
//   bearsvm_gen OUT_DIR
//
// OUT_DIR/embeds/<split>/<bear>/<chip>.dat   one matrix<float,0,1> per chip, as bearembed --embed
// OUT_DIR/<split>_embeds.xml                 the embeddings XML that lists them (bearembed's layout)
// OUT_DIR/bearsvm_network.dat, _ids.dat      bearsvm --train on train_embeds.xml: a one-vs-one set
//                                            of linear SVMs (C 100), and the bears' ids
// OUT_DIR/parity_embeddings.dat              std::vector<matrix<float,128,1>>: embeddings to decide
// OUT_DIR/parity.json                        dlib's decision (and every pair's score) for each
// OUT_DIR/bearsvm_rbf.dat, bearsvm_64d.dat   files BearID must refuse: an RBF kernel, 64-D samples
//
// Everything is deterministic (dlib::rand with fixed seeds), so the files are the same on
// every run: scripts/dlibgen/build.sh rebuilds them and the slow test compares the bytes.

#include <dlib/svm_threaded.h>
#include <dlib/rand.h>

#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace dlib;

typedef matrix<float, 128, 1> sample_type;
typedef one_vs_one_trainer<any_trainer<sample_type>> ovo_trainer;
typedef linear_kernel<sample_type> kernel_type;

static void make_dirs(const std::string& path)
{
    std::string part;
    std::stringstream ss(path);
    std::string item;
    while (std::getline(ss, item, '/'))
    {
        part += item + "/";
        mkdir(part.c_str(), 0755);
    }
}

template <long N>
static matrix<float, N, 1> gaussian(dlib::rand& rnd, float scale)
{
    matrix<float, N, 1> v;
    for (long i = 0; i < N; ++i)
        v(i) = scale * rnd.get_random_gaussian();
    return v;
}

struct Chip
{
    std::string bear, file;
    matrix<float, 0, 1> embedded;
};

// A bear's chips: its centre plus noise, scaled as dlib's ResNet outputs are (length ~1).
static std::vector<Chip> chips_of(
    const std::string& split, const std::string& bear, const sample_type& centre, int n, float noise,
    dlib::rand& rnd)
{
    std::vector<Chip> out;
    for (int i = 0; i < n; ++i)
    {
        sample_type v = centre + gaussian<128>(rnd, noise / std::sqrt(128.0f));
        v = v / length(v);
        char name[64];
        std::snprintf(name, sizeof name, "IMG_%04d", 100 + i);
        out.push_back({bear, "embeds/" + split + "/" + bear + "/" + name + ".dat", matrix<float, 0, 1>(v)});
    }
    return out;
}

// bearembed --embed: each chip's embedding serialized to its own file, and the embeddings XML
// (boost::property_tree's write_xml with 4-space indents, as bearembed's later versions wrote
// it: command, cwd and filetype first, then the embeddings, each with its values, label and
// chip source, then name and comment).
static void write_embeds(const std::string& out_dir, const std::string& split, const std::vector<Chip>& chips)
{
    std::ofstream xml(out_dir + "/" + split + "_embeds.xml");
    xml << "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<dataset>\n";
    xml << "    <command>./bearembed --embed bearembed_network.dat --output embeds/" << split << " " << split
        << ".xml </command>\n";
    xml << "    <cwd>.</cwd>\n    <filetype>embeddings</filetype>\n    <embeddings>\n";
    for (const auto& c : chips)
    {
        const std::string path = out_dir + "/" + c.file;
        make_dirs(path.substr(0, path.rfind('/')));
        serialize(path) << c.embedded;
        xml << "        <embedding file=\"" << c.file << "\">\n            <embed_val>";
        for (long r = 0; r < c.embedded.nr(); ++r)
            xml << " " << std::setprecision(9) << c.embedded(r);
        std::string source = c.file.substr(std::string("embeds/").size());
        source = "chips/" + source.substr(0, source.size() - 4) + ".jpg";
        xml << "</embed_val>\n            <label>" << c.bear << "</label>\n            <chip_source>" << source
            << "</chip_source>\n        </embedding>\n";
    }
    xml << "    </embeddings>\n    <name>bearid dataset</name>\n    <comment>Created by bearembed</comment>\n";
    xml << "</dataset>\n";
}

// bearsvm --train: the embeddings by bear (sorted, as its std::map), label = the bear's index.
static void train_bearsvm(const std::string& in_dir, const std::string& out_dir, const std::vector<Chip>& chips,
                          one_vs_one_decision_function<ovo_trainer, decision_function<kernel_type>>& df2,
                          std::vector<std::string>& ids)
{
    std::map<std::string, std::vector<sample_type>> by_bear;
    for (const auto& c : chips)
    {
        sample_type v;
        deserialize(c.file[0] == '/' ? c.file : in_dir + "/" + c.file) >> v;  // as bearsvm, into matrix<float,128,1>
        by_bear[c.bear].push_back(v);
    }
    std::vector<sample_type> samples;
    std::vector<double> labels;
    ids.clear();
    for (const auto& kv : by_bear)
    {
        for (const auto& v : kv.second)
        {
            samples.push_back(v);
            labels.push_back(ids.size());
        }
        ids.push_back(kv.first);
    }
    ovo_trainer trainer;
    svm_c_linear_trainer<kernel_type> linear_trainer;
    linear_trainer.set_c(100);
    trainer.set_trainer(linear_trainer);
    randomize_samples(samples, labels);
    one_vs_one_decision_function<ovo_trainer> df = trainer.train(samples, labels);
    df2 = df;
    serialize(out_dir + "/bearsvm_network.dat") << df2;
    serialize(out_dir + "/bearsvm_network_ids.dat") << ids;
}

static void write_refused(const std::string& out_dir, dlib::rand& rnd)
{
    {  // an RBF kernel: the same layout with a gamma after each bias, and support vectors
        // (svm_c_trainer takes double samples; the SVM it finds is stored with float ones, as
        // one_vs_one_decision_function<ovo_trainer, decision_function<radial_basis_kernel<sample_type>>>)
        typedef matrix<double, 128, 1> double_type;
        std::vector<double_type> samples;
        std::vector<double> labels;
        for (int bear = 0; bear < 2; ++bear)
        {
            const sample_type centre = gaussian<128>(rnd, 1.0f / std::sqrt(128.0f));
            for (int i = 0; i < 3; ++i)
            {
                samples.push_back(matrix_cast<double>(centre + gaussian<128>(rnd, 0.3f / std::sqrt(128.0f))));
                labels.push_back(bear ? -1 : +1);
            }
        }
        svm_c_trainer<radial_basis_kernel<double_type>> rbf_trainer;
        rbf_trainer.set_kernel(radial_basis_kernel<double_type>(0.5));
        rbf_trainer.set_c(10);
        const auto d = rbf_trainer.train(samples, labels);
        typedef radial_basis_kernel<sample_type> rbf;
        matrix<sample_type, 0, 1> basis(d.basis_vectors.size());
        for (long i = 0; i < basis.size(); ++i)
            basis(i) = matrix_cast<float>(d.basis_vectors(i));
        decision_function<rbf> f(matrix_cast<float>(d.alpha), static_cast<float>(d.b), rbf(0.5f), basis);
        one_vs_one_decision_function<ovo_trainer>::binary_function_table table;
        table[unordered_pair<double>(0, 1)] = f;
        one_vs_one_decision_function<ovo_trainer, decision_function<rbf>> df2(table);
        serialize(out_dir + "/bearsvm_rbf.dat") << df2;
    }
    {  // 64-D samples: an embedding network other than bearembed's
        typedef matrix<float, 64, 1> small_type;
        typedef one_vs_one_trainer<any_trainer<small_type>> small_ovo;
        std::vector<small_type> samples;
        std::vector<double> labels;
        for (int bear = 0; bear < 2; ++bear)
        {
            const small_type centre = gaussian<64>(rnd, 1.0f / 8.0f);
            for (int i = 0; i < 3; ++i)
            {
                samples.push_back(centre + gaussian<64>(rnd, 0.3f / 8.0f));
                labels.push_back(bear);
            }
        }
        small_ovo trainer;
        svm_c_linear_trainer<linear_kernel<small_type>> linear_trainer;
        linear_trainer.set_c(100);
        trainer.set_trainer(linear_trainer);
        one_vs_one_decision_function<small_ovo> df = trainer.train(samples, labels);
        one_vs_one_decision_function<small_ovo, decision_function<linear_kernel<small_type>>> df2 = df;
        serialize(out_dir + "/bearsvm_64d.dat") << df2;
    }
}

// An embeddings XML as bearsvm reads it: each <embedding file=...> and its <label> (a plain
// scan: the files are bearembed's layout, one element a line).
static std::vector<Chip> read_embeds_xml(const std::string& xml_file)
{
    std::ifstream in(xml_file);
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    std::vector<Chip> out;
    for (size_t at = text.find("<embedding file=\""); at != std::string::npos;
         at = text.find("<embedding file=\"", at + 1))
    {
        const size_t start = at + std::string("<embedding file=\"").size();
        const size_t label = text.find("<label>", start), end = text.find("</label>", start);
        const std::string file = text.substr(start, text.find('"', start) - start);
        std::string bear = text.substr(label + 7, end - label - 7);
        if (bear.find_first_not_of(' ') == std::string::npos)
            continue;  // bearsvm skips embeddings with no bear
        out.push_back({bear, file, matrix<float, 0, 1>()});
    }
    return out;
}

int main(int argc, char** argv)
{
    if (argc == 4 && std::string(argv[1]) == "--train")
    {  // bearsvm --train EMBEDS_XML: the SVM and ids in OUT_DIR (the XML's files relative to it)
        const std::string xml = argv[2], out_dir = argv[3];
        const std::string base = xml.find('/') == std::string::npos ? "." : xml.substr(0, xml.rfind('/'));
        const std::vector<Chip> chips = read_embeds_xml(xml);
        one_vs_one_decision_function<ovo_trainer, decision_function<kernel_type>> df;
        std::vector<std::string> ids;
        train_bearsvm(base, out_dir, chips, df, ids);
        std::cout << "bearsvm_gen --train: " << chips.size() << " embeddings, " << ids.size() << " bears\n";
        return 0;
    }
    if (argc != 2)
    {
        std::cerr << "usage: bearsvm_gen OUT_DIR | bearsvm_gen --train EMBEDS_XML OUT_DIR\n";
        return 2;
    }
    const std::string out_dir = argv[1];
    make_dirs(out_dir);
    dlib::rand rnd("bearid issue 33");

    const std::vector<std::string> bears = {"bf_032", "bf_051", "bf_480", "bf_503"};
    const std::vector<std::string> strangers = {"bf_700", "bf_701"};  // bears the SVM never saw
    std::map<std::string, sample_type> centres;
    for (const auto& b : bears)
        centres[b] = gaussian<128>(rnd, 1.0f / std::sqrt(128.0f));
    for (const auto& b : strangers)
        centres[b] = gaussian<128>(rnd, 1.0f / std::sqrt(128.0f));

    std::vector<Chip> train, val, test;
    for (const auto& b : bears)
    {
        for (auto& c : chips_of("train", b, centres[b], 5, 0.6f, rnd)) train.push_back(c);
        for (auto& c : chips_of("val", b, centres[b], 2, 0.6f, rnd)) val.push_back(c);
        for (auto& c : chips_of("test", b, centres[b], 2, 0.6f, rnd)) test.push_back(c);
    }
    for (auto& c : chips_of("val", strangers[0], centres[strangers[0]], 3, 0.6f, rnd)) val.push_back(c);
    for (auto& c : chips_of("test", strangers[1], centres[strangers[1]], 3, 0.6f, rnd)) test.push_back(c);
    write_embeds(out_dir, "train", train);
    write_embeds(out_dir, "val", val);
    write_embeds(out_dir, "test", test);

    one_vs_one_decision_function<ovo_trainer, decision_function<kernel_type>> df;
    std::vector<std::string> ids;
    train_bearsvm(out_dir, out_dir, train, df, ids);
    // Read back as bearsvm --infer does, and decide with what was read.
    one_vs_one_decision_function<ovo_trainer, decision_function<kernel_type>> df3;
    deserialize(out_dir + "/bearsvm_network.dat") >> df3;

    // Embeddings to decide: near the bears (hard ones, with more noise), far from all of them
    // (random directions), the origin (every score is -b), and one embedding for each way the
    // pairs can vote: every sign pattern of the pairs' scores, found by least squares (the
    // pairs' weight vectors are independent), so every tie dlib breaks is among them.
    std::vector<sample_type> cases;
    for (int i = 0; i < 16; ++i)
    {
        const sample_type& centre = centres[bears[i % bears.size()]];
        sample_type v = centre + gaussian<128>(rnd, 1.2f / std::sqrt(128.0f));
        cases.push_back(v / length(v));
    }
    for (int i = 0; i < 16; ++i)
    {
        sample_type v = gaussian<128>(rnd, 1.0f);
        cases.push_back(v / length(v));
    }
    cases.push_back(zeros_matrix<float>(128, 1));
    const auto& pairs = df3.get_binary_decision_functions();
    matrix<double> w(pairs.size(), 128);
    matrix<double, 0, 1> b(pairs.size());
    long row = 0;
    for (const auto& kv : pairs)
    {
        const auto& f = any_cast<decision_function<kernel_type>>(kv.second);
        set_rowm(w, row) = trans(matrix_cast<double>(f.basis_vectors(0))) * f.alpha(0);
        b(row++) = f.b;
    }
    const matrix<double> w_pinv = pinv(w);
    for (unsigned long pattern = 0; pattern < (1ul << pairs.size()); ++pattern)
    {
        matrix<double, 0, 1> target(pairs.size());
        for (long p = 0; p < target.size(); ++p)
            target(p) = b(p) + ((pattern >> p) & 1 ? 0.3 : -0.3);
        cases.push_back(matrix_cast<float>(w_pinv * target));
    }
    serialize(out_dir + "/parity_embeddings.dat") << cases;

    std::ofstream js(out_dir + "/parity.json");
    js << "{\n \"ids\": [";
    for (size_t i = 0; i < ids.size(); ++i)
        js << (i ? ", " : "") << "\"" << ids[i] << "\"";
    js << "],\n \"pairs\": [";
    const auto& table = df3.get_binary_decision_functions();
    bool first = true;
    for (const auto& kv : table)
    {
        js << (first ? "" : ", ") << "[" << kv.first.first << ", " << kv.first.second << "]";
        first = false;
    }
    js << "],\n \"cases\": [\n";
    int ties = 0;
    for (size_t i = 0; i < cases.size(); ++i)
    {
        const double label = df3(cases[i]);
        std::map<double, int> votes;
        js << "  {\"label\": " << label << ", \"scores\": [";
        first = true;
        for (const auto& kv : table)
        {
            const double score = kv.second(cases[i]);
            votes[score > 0 ? kv.first.first : kv.first.second] += 1;
            js << (first ? "" : ", ") << std::setprecision(9) << score;
            first = false;
        }
        int best = 0, at_best = 0;
        for (const auto& kv : votes) best = std::max(best, kv.second);
        for (const auto& kv : votes) at_best += kv.second == best;
        ties += at_best > 1;
        js << "], \"tie\": " << (at_best > 1 ? "true" : "false") << "}" << (i + 1 < cases.size() ? "," : "") << "\n";
    }
    js << " ]\n}\n";
    write_refused(out_dir, rnd);
    std::cout << "bearsvm_gen: " << ids.size() << " bears, " << table.size() << " pairs, " << cases.size()
              << " parity embeddings (" << ties << " with tied votes), " << train.size() + val.size() + test.size()
              << " embedding files\n";
    return 0;
}
