// The MPI world as a Communicator (dist/communicator.h), and how a program finds out whether it
// runs under mpirun.
//
//   if (launched_by_mpirun()) { Communicator& world = mpi_world(); ... world.rank() ... }
//
// mpi_world() initialises MPI on its first call (MPI_Init_thread, funneled: only the calling
// thread talks to MPI) and finalises it at exit. Built without MPI (no mpicxx when qnn was
// built: QNN_MPI undefined), mpi_built() is false and mpi_world() is an error that says so.
//
// Failures do not hang the job. A rank that finds an error calls abort(): MPI_Abort ends every
// rank, and mpirun reports it; a rank that dies (a crash, a kill) is noticed by mpirun, which
// ends the others. abort_mpi_job(message) does the same from anywhere (the apps' error path).
#pragma once
#include <string>

#include "dist/communicator.h"

namespace qnn {

bool mpi_built();
// Whether the environment says mpirun started this process (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
// PMIX_RANK set): a plain start stays one process and never initialises MPI.
bool launched_by_mpirun();
Communicator& mpi_world();
// Whether mpi_world() has been created (MPI is initialised).
bool mpi_active();
// This process's rank among the ranks on its machine (MPI_COMM_TYPE_SHARED), creating the world
// if need be; collective: every rank calls it. 0 without MPI.
int mpi_local_rank();
// When MPI is active with more than one rank: prints "rank R: message" and ends the job
// (MPI_Abort). Otherwise returns (a single process reports errors itself).
void abort_mpi_job(const std::string& message);

}  // namespace qnn
