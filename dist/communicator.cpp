// LocalCommunicator's abort (see dist/communicator.h): one process has no peers to stop, so the
// error is thrown like any other.
#include "dist/communicator.h"

#include "tensor/check.h"

namespace qnn {

void LocalCommunicator::abort(const std::string& message) { throw Error(message); }

}  // namespace qnn
