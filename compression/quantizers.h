// The Quantizer interface and the four quantizers (reference §3): naive (8-bit weights,
// running max-abs scale), qat (weights and inputs/outputs, schemes, dtypes,
// quant_start_step), dorefa (weights) and bnn (binary weights and outputs).
//
// The session keeps a float shadow of every quantized weight, asks the quantizer for the
// quantized value after each optimizer step, and hooks inputs/outputs with the handlers
// it returns. Quantizers are created per Compress call and are not thread-safe.
#ifndef AUTOCOMPRESS_COMPRESSION_QUANTIZERS_H_
#define AUTOCOMPRESS_COMPRESSION_QUANTIZERS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "compression/config_list.h"
#include "compression/graph_hooks.h"

namespace at {
class Tensor;
}

namespace autocompress::compression {

// How one weight is quantized (from its config-list entry).
struct WeightQuantConfig {
  int bits = 8;
  std::string scheme;  // qat only
  std::string dtype = "uint";
  int quant_start_step = 0;
};

// An input/output quantizer with a calibration-table entry (QAT's tracked range).
class CalibratedActivation {
 public:
  virtual ~CalibratedActivation() = default;
  virtual int bits() const = 0;
  // Undefined before the first training forward.
  virtual const at::Tensor& tracked_min() const = 0;
  virtual const at::Tensor& tracked_max() const = 0;
};

struct ActivationQuantizer {
  std::shared_ptr<ActivationHandler> handler;
  std::shared_ptr<CalibratedActivation> calibration;  // null: no calibration entry
};

class Quantizer {
 public:
  virtual ~Quantizer() = default;

  // The bit width a weight configured with `configured` bits gets (bnn: 1).
  virtual int WeightBits(int configured) const { return configured; }
  // Whether the report lists each weight's quant scheme (qat).
  virtual bool ReportsScheme() const { return false; }

  // The quantized value of a weight from its float shadow at optimizer step `step`
  // (1-based). Updates the scale / zero point / straight-through mask the algorithm
  // keeps (left undefined where it keeps none; an undefined mask passes gradients).
  virtual at::Tensor QuantizeWeight(const WeightQuantConfig& config, int64_t step,
                                    const at::Tensor& shadow, at::Tensor* scale,
                                    at::Tensor* zero_point, at::Tensor* ste_mask) = 0;

  // The hook for `type` ("input" or "output", which the config list allowed) of a layer;
  // `steps` is the session's step counter, read at every forward.
  virtual ActivationQuantizer ForActivation(const LayerAssignment& assignment,
                                            const LayerInfo& layer, const std::string& type,
                                            const int64_t* steps) = 0;
};

std::unique_ptr<Quantizer> NewNaiveQuantizer();
std::unique_ptr<Quantizer> NewQatQuantizer();
std::unique_ptr<Quantizer> NewDorefaQuantizer();
std::unique_ptr<Quantizer> NewBnnQuantizer();

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_QUANTIZERS_H_
