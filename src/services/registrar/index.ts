/** The registrar service (RFC 3261 §10.3): public API. */
export {
  createRegistrar,
  REGISTRAR_ALLOW,
  REGISTRAR_SUPPORTED,
  type Registrar,
  type RegistrarOptions,
} from './registrar.ts';
