export * from '../../contracts/config';
export * from './load';
export * from './memory';
