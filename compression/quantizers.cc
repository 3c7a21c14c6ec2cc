#include "compression/quantizers.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <stdexcept>

#include "compression/kernels/quant_kernels.h"
#include "compression/quantization.h"

namespace autocompress::compression {
namespace {

// QAT input/output quantization (reference §3.3): in training, the tensor's range
// (per tensor, or per channel along dim 1) updates an EMA (decay 0.99; overwritten
// before the first optimizer step); from quant_start_step on, the tracked range gives
// scale and zero point and the tensor is fake-quantized, gradients passing only inside
// the range. In eval mode the stored scale and zero point are used; before any training
// the tensor passes unquantized (NNI produced NaN there).
class QatActivationQuantizer final : public ActivationHandler, public CalibratedActivation {
 public:
  QatActivationQuantizer(int bits, std::string scheme, std::string dtype, int quant_start_step,
                         const int64_t* steps, bool linear)
      : linear_(linear),
        bits_(bits),
        per_channel_(scheme.rfind("per_channel", 0) == 0),
        symmetric_(scheme.find("symmetric") != std::string::npos),
        dtype_(std::move(dtype)),
        range_(RangeFor(bits, dtype_)),
        quant_start_step_(quant_start_step),
        steps_(steps) {}

  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    const bool per_channel = per_channel_ && x.dim() >= 2;
    // NNI quantizes a Linear's input/output per channel only when it is 2-D.
    if (per_channel && linear_ && x.dim() != 2) return x;
    // Channels first, so the kernel's per-channel axis (dim 0) is dim 1 of x.
    const torch::Tensor channels_first =
        per_channel ? x.detach().transpose(0, 1).contiguous() : x.detach();
    if (training) {
      Track(channels_first, per_channel);
      if (quant_start_step_ > *steps_) return x;
      ComputeScaleZeroPoint(tracked_min_, tracked_max_, range_, symmetric_, dtype_, &scale_,
                            &zero_point_);
    }
    if (!scale_.defined()) return x;
    auto [value, mask] =
        kernels::FakeQuantize(channels_first, scale_, zero_point_, range_.qmin, range_.qmax);
    if (per_channel) {
      value = value.transpose(0, 1).contiguous();
      mask = mask.transpose(0, 1).contiguous();
    }
    *ste_mask = mask;
    return value;
  }

  int bits() const override { return bits_; }
  const torch::Tensor& tracked_min() const override { return tracked_min_; }
  const torch::Tensor& tracked_max() const override { return tracked_max_; }

 private:
  void Track(const torch::Tensor& channels_first, bool per_channel) {
    torch::NoGradGuard no_grad;
    torch::Tensor lo, hi;
    RangeOf(channels_first, per_channel, &lo, &hi);
    if (*steps_ == 1 || !tracked_min_.defined()) {
      tracked_min_ = lo.clone();
      tracked_max_ = hi.clone();
    }
    tracked_min_ = 0.99 * tracked_min_ + 0.01 * lo;
    tracked_max_ = 0.99 * tracked_max_ + 0.01 * hi;
  }

  bool linear_;
  int bits_;
  bool per_channel_, symmetric_;  // from the scheme
  std::string dtype_;
  IntegerRange range_;
  int quant_start_step_;
  const int64_t* steps_;
  torch::Tensor tracked_min_, tracked_max_, scale_, zero_point_;
};

// BNN output binarization: sign(y) with sign(0) = +1; gradients pass where |y| <= 1.
class BnnOutputQuantizer final : public ActivationHandler {
 public:
  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    *ste_mask = x.detach().abs().le(1).to(x.scalar_type());
    return torch::where(x.detach().ge(0), torch::ones_like(x), -torch::ones_like(x));
  }
};

// Weights only: activations never reach ForActivation (the config list rejects them).
class WeightOnlyQuantizer : public Quantizer {
 public:
  ActivationQuantizer ForActivation(const LayerAssignment&, const LayerInfo&, const std::string&,
                                    const int64_t*) override {
    throw std::logic_error("this quantizer does not quantize inputs or outputs");
  }
};

class NaiveQuantizer final : public WeightOnlyQuantizer {
 public:
  at::Tensor QuantizeWeight(const WeightQuantConfig&, int64_t, const at::Tensor& shadow,
                            at::Tensor* scale, at::Tensor*, at::Tensor*) override {
    return NaiveQuantizeWeight(shadow, *scale);  // *scale: naive's running scale
  }
};

class DorefaQuantizer final : public WeightOnlyQuantizer {
 public:
  at::Tensor QuantizeWeight(const WeightQuantConfig& config, int64_t, const at::Tensor& shadow,
                            at::Tensor*, at::Tensor*, at::Tensor*) override {
    return DorefaQuantizeWeight(shadow, config.bits);
  }
};

class QatQuantizer final : public Quantizer {
 public:
  bool ReportsScheme() const override { return true; }

  at::Tensor QuantizeWeight(const WeightQuantConfig& config, int64_t step, const at::Tensor& shadow,
                            at::Tensor* scale, at::Tensor* zero_point,
                            at::Tensor* ste_mask) override {
    if (config.quant_start_step > step) {
      *ste_mask = torch::Tensor();
      return shadow;  // before quant_start_step: float weights
    }
    return QatQuantizeWeight(shadow, config.bits, config.scheme, config.dtype, scale, zero_point,
                             ste_mask);
  }

  ActivationQuantizer ForActivation(const LayerAssignment& a, const LayerInfo& layer,
                                    const std::string& type, const int64_t* steps) override {
    auto qat = std::make_shared<QatActivationQuantizer>(
        a.config.quant_bits.at(type), a.config.quant_scheme.at(type), a.config.quant_dtype.at(type),
        a.config.quant_start_step, steps, layer.type == "Linear");
    return {qat, qat};
  }
};

class BnnQuantizer final : public Quantizer {
 public:
  int WeightBits(int) const override { return 1; }

  at::Tensor QuantizeWeight(const WeightQuantConfig&, int64_t, const at::Tensor& shadow,
                            at::Tensor*, at::Tensor*, at::Tensor*) override {
    return BnnQuantizeWeight(shadow);
  }

  ActivationQuantizer ForActivation(const LayerAssignment&, const LayerInfo&, const std::string&,
                                    const int64_t*) override {
    return {std::make_shared<BnnOutputQuantizer>(), nullptr};
  }
};

}  // namespace

std::unique_ptr<Quantizer> NewNaiveQuantizer() { return std::make_unique<NaiveQuantizer>(); }
std::unique_ptr<Quantizer> NewQatQuantizer() { return std::make_unique<QatQuantizer>(); }
std::unique_ptr<Quantizer> NewDorefaQuantizer() { return std::make_unique<DorefaQuantizer>(); }
std::unique_ptr<Quantizer> NewBnnQuantizer() { return std::make_unique<BnnQuantizer>(); }

}  // namespace autocompress::compression
