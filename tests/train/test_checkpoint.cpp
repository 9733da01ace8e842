// Training checkpoints round trip: model parameters, BatchNorm buffers, momentum buffer, step
// count and metadata come back exactly; a file that is not a checkpoint is refused by name.
#include <doctest.h>
#include <unistd.h>

#include "train/checkpoint.h"
#include "nn/init.h"
#include "nn/resnet.h"

using namespace qnn;

TEST_CASE("checkpoint: save and load restore model and optimizer exactly") {
  char pattern[] = "/tmp/qnn_ckpt_XXXXXX";
  const std::string dir = mkdtemp(pattern);
  const std::string path = dir + "/ck.safetensors";

  manual_seed(1);
  CifarResNet a(20);
  SGD sgd_a(a.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, false});
  Variable x(Tensor::normal({4, 3, 32, 32}, 0, 1, 9));
  Variable loss = cross_entropy(a(x), {1, 2, 3, 4});
  sgd_a.zero_grad();
  loss.backward();
  sgd_a.step();
  save_checkpoint(path, a, sgd_a, {{"arch", "resnet20"}, {"epoch", "7"}});

  manual_seed(2);
  CifarResNet b(20);
  SGD sgd_b(b.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, false});
  CHECK(b.flatten().values().to_vector() != a.flatten().values().to_vector());
  auto meta = load_checkpoint(path, b, sgd_b);
  CHECK(meta["epoch"] == "7");
  CHECK(b.flatten().values().to_vector() == a.flatten().values().to_vector());
  CHECK(sgd_b.momentum_buffer().to_vector() == sgd_a.momentum_buffer().to_vector());
  CHECK(sgd_b.steps() == 1);
  auto buffers_a = a.named_buffers(), buffers_b = b.named_buffers();
  for (size_t i = 0; i < buffers_a.size(); ++i) CHECK(buffers_a[i].second->to_vector() == buffers_b[i].second->to_vector());

  // PyTorch-style names, momentum per parameter, the counter as an integer.
  SafetensorsFile file = load_safetensors(path);
  CHECK(file.has("layer3.2.conv2.weight"));
  CHECK(file.has("optimizer.momentum_buffer.fc.weight"));
  CHECK(file.find("bn1.num_batches_tracked")->as_int64);

  save_safetensors(dir + "/plain.safetensors", {{"w", Tensor::zeros({2})}});
  CHECK_THROWS_WITH_AS(load_checkpoint(dir + "/plain.safetensors", b, sgd_b),
                       doctest::Contains("plain.safetensors: not a qnn training checkpoint"), Error);
  CifarResNet c(32);
  SGD sgd_c(c.flatten(), {0.1f, 0.9f});
  CHECK_THROWS_WITH_AS(load_checkpoint(path, c, sgd_c), doctest::Contains("ck.safetensors"), Error);
  std::system(("rm -rf " + dir).c_str());
}
